"""A run on a Dask cluster gives exactly what one process gives (scale.md section 2).

Hypothesis scenarios (tests/cluster.py: policies and packet sequences of tests/strategies.py
cut into one to three captures, damaged ends, snap lengths below some records, tiny block
sizes down to one record a block) run in one process and on an in-process Dask cluster of two
workers, through the Python API: the summaries must be the same JSON, and every column of
every packet (the reader's, joined fragments included, and the verdicts) the same. With more
groups of keys than workers too, and one group (the degenerate cut). The command line's bytes
are compared on real clusters in test_scale_cluster.py.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier.codes import FRAGMENT_FIRST, FRAGMENT_LATER
from classifier.packets import Packet, PacketBatch, QuotedHeader
from classifier.policy import Instance, Policy, Rule, SecurityGroup
from classifier.scale.tasks import lanes_of
from tests.cluster import Scenario, api_run, assert_same, dask_or_skip, scenarios
from tests.conftest import PCAPS_DEV, SAMPLE_PCAPS
from tests.strategies import T0

EXAMPLES = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """Two workers in this process (threads: quick to start, the same tasks). Dask's
    sampling profiler is off, as on the command's own local cluster (`LOCAL_CONFIG`): in
    this process it walks the test's threads (`sys._current_frames`) every 10 ms from the
    cluster's event loop, and once left a run waiting forever on a lock inside it."""
    dask_or_skip()
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.worker.profile.enabled": False}):  # read at start
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            dashboard_address=":0",  # any free port: 8787 may be another cluster's (a warning)
            silence_logs=logging.CRITICAL,
        )
    client = Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


def compare(scenario: Scenario, client: Any, **extra: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        scenario.write(Path(tmp))
        one = api_run(scenario)
        scaled = api_run(scenario, client=client, blocksize=scenario.blocksize, **extra)
        assert_same(one, scaled)
        assert scaled.notes == []


@EXAMPLES
@given(scenario=scenarios())
def test_a_cluster_gives_what_one_process_gives(client: Any, scenario: Scenario) -> None:
    compare(scenario, client)


@EXAMPLES
@given(scenario=scenarios(max_size=25, blocksizes=(1, 120, 600)), groups=st.sampled_from((1, 3, 5)))
def test_so_does_any_number_of_groups(client: Any, scenario: Scenario, groups: int) -> None:
    compare(scenario, client, groups=groups)


def test_the_samples_and_dev_captures(client: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        import shutil

        from classifier.policy import load_policy

        policy = load_policy(str(SAMPLE_PCAPS.parent / "examples" / "web-db.yaml"))
        paths = [str(p) for p in sorted(SAMPLE_PCAPS.glob("*.pcap"))]
        if PCAPS_DEV.is_dir():
            paths += [str(p) for p in sorted(PCAPS_DEV.iterdir()) if p.stat().st_size < 300_000]
        shutil.copy(SAMPLE_PCAPS.parent / "examples" / "web-db.yaml", Path(tmp) / "policy.yaml")
        for stateless in (False, True):
            scenario = Scenario(policy, [], [], blocksize=2000, stateless=stateless)
            scenario.paths, scenario.policy_path = paths, str(Path(tmp) / "policy.yaml")
            assert_same(api_run(scenario), api_run(scenario, client=client, blocksize=2000))


def test_a_capture_the_command_cannot_read_stops_the_run_as_in_one_process(
    client: Any, tmp_path: Path
) -> None:
    bad = tmp_path / "not-a-capture.pcap"
    bad.write_bytes(b"this is not a capture file at all")
    scenario = Scenario(
        Policy({}, {}, {}), [], [], blocksize=500, policy_path=str(tmp_path / "p.yaml")
    )
    (tmp_path / "p.yaml").write_text((SAMPLE_PCAPS.parent / "examples" / "web-db.yaml").read_text())
    scenario.paths = [str(SAMPLE_PCAPS / "web.pcap"), str(bad), str(SAMPLE_PCAPS / "admin.pcap")]
    one = api_run(scenario)
    assert one.failure is not None and "not a pcap or pcapng file" in one.failure
    assert_same(one, api_run(scenario, client=client, blocksize=500))


# --- the corner of a fragmented ICMP error ---------------------------------------------------


def _addresses_in_other_groups() -> tuple[str, str, str]:
    """A host H, a server X and a router R whose pairs {H, X} and {R, H} fall in different
    lanes of two: the error's first fragment (quoting H -> X) and its later fragment (sent
    R -> H) then fall in different lanes unless the later fragment is joined first (every
    lane joins every fragment) and only then given its lane."""
    for last in range(2, 250):
        h, x, r = "10.0.0.1", "203.0.113.9", f"198.51.100.{last}"
        H, X, R = (ipaddress.ip_address(a) for a in (h, x, r))
        pairs = PacketBatch.from_packets(
            [
                Packet(ip_version=4, src=H, dst=X, protocol=6),
                Packet(ip_version=4, src=R, dst=H, protocol=6),
            ]
        )
        if sorted(lanes_of(pairs, 2).tolist()) == [0, 1]:  # one each
            return h, x, r
    raise AssertionError("no such addresses")


def test_a_fragmented_icmp_error_is_related_in_every_part(client: Any, tmp_path: Path) -> None:
    """H opens a connection to X; a router R sends H an ICMP error quoting H -> X, in two
    fragments; files and blocks are cut between every packet. Both fragments are `related`
    (semantics section 4: the later fragment takes the quoted header of its first), in one
    process and on the cluster, whatever the groups."""
    h, x, r = _addresses_in_other_groups()
    H, X, R = (ipaddress.ip_address(a) for a in (h, x, r))
    vm = Instance("vm", (H,), ("sg",))
    egress = Rule("sg/1", "sg", 1, "egress", 100, ip_version=4)
    policy = Policy(
        groups={"sg": SecurityGroup("sg", (egress,))}, address_groups={}, instances={"vm": vm}
    )
    syn = Packet(
        ts_ns=T0, ip_version=4, src=H, dst=X, protocol=6, sport=40000, dport=443, tcp_flags=2
    )
    error = Packet(
        ts_ns=T0 + 1_000_000,
        ip_version=4,
        src=R,
        dst=H,
        protocol=1,
        icmp_type=3,
        icmp_code=4,
        quoted=QuotedHeader(6, H, X, 40000, 443),
        fragment=FRAGMENT_FIRST,
        ip_id=7,
    )
    later = Packet(
        ts_ns=T0 + 2_000_000, ip_version=4, src=R, dst=H, protocol=1, fragment=FRAGMENT_LATER,
        ip_id=7, frag_offset=185,
    )  # fmt: skip
    reply = dataclasses.replace(
        syn, ts_ns=T0 + 3_000_000, src=X, dst=H, sport=443, dport=40000, tcp_flags=18
    )
    packets = [dataclasses.replace(p, index=i) for i, p in enumerate((syn, error, later, reply))]
    for cuts in ([], [1], [2], [1, 2], [2, 3]):
        scenario = Scenario(policy, packets, cuts, blocksize=1)
        scenario.write(tmp_path)
        one = api_run(scenario)
        assert list(one.columns["reason"]) == [1, 4, 4, 3]  # rule, related, related, established
        for groups in (2, 3):
            assert_same(one, api_run(scenario, client=client, blocksize=1, groups=groups))


@pytest.mark.parametrize("kind", ["icmp-type", "tcp-port"])
def test_joined_fragments_are_judged_again_by_the_rules(
    client: Any, tmp_path: Path, kind: str
) -> None:
    """A later fragment is judged by the rules with its first fragment's fields, and no state
    hides it here: an ICMP error quoting no live connection (a rule allows its type only), or
    a TCP datagram a port rule denies. Unjoined, neither fragment would match that rule."""
    h, x, r = _addresses_in_other_groups()
    H, X, R = (ipaddress.ip_address(a) for a in (h, x, r))
    if kind == "icmp-type":
        rule = Rule("sg/1", "sg", 1, "ingress", 1, ip_version=4, protocol=1, icmp_type=3)
        first = Packet(
            ts_ns=T0, ip_version=4, src=R, dst=H, protocol=1, icmp_type=3, icmp_code=1,
            quoted=QuotedHeader(17, H, X, 5000, 53), fragment=FRAGMENT_FIRST, ip_id=9,
        )  # fmt: skip
        expected = [(0, 1), (0, 1)]  # allow by the rule, both
    else:
        rule = Rule(
            "sg/1", "sg", 1, "ingress", 1, action="deny", ip_version=4, protocol=6,
            ports=((22, 22),),
        )  # fmt: skip
        first = Packet(
            ts_ns=T0, ip_version=4, src=R, dst=H, protocol=6, sport=999, dport=22, tcp_flags=2,
            fragment=FRAGMENT_FIRST, ip_id=9,
        )  # fmt: skip
        expected = [(1, 1), (1, 1)]  # deny by the rule, both (unjoined: implicit deny)
    policy = Policy(
        groups={"sg": SecurityGroup("sg", (rule,))},
        address_groups={},
        instances={"vm": Instance("vm", (H,), ("sg",))},
    )
    later = Packet(
        ts_ns=T0 + 5, ip_version=4, src=R, dst=H, protocol=first.protocol,
        fragment=FRAGMENT_LATER, ip_id=9, frag_offset=185, index=1,
    )  # fmt: skip
    for cuts in ([], [1]):
        scenario = Scenario(policy, [first, later], cuts, blocksize=1)
        scenario.write(tmp_path)
        one = api_run(scenario)
        got = list(
            zip(one.columns["verdict"].tolist(), one.columns["reason"].tolist(), strict=True)
        )
        assert got == expected
        assert_same(one, api_run(scenario, client=client, blocksize=1, groups=2))
