"""The capture room: pcap/pcapng files in, `PacketBatch` columns out.

Owns the reader: the facade (`reader`: opening, memory map, streams, damage, warnings, the
scapy slow path), the byte sources (`streams`: pipes, gzip/bzip2/xz/zstd), the core twins
(`_pcap.pyx` over `pcap_core.h` and `pcap_guard.h`, and `_pcap_py.py`: framing and header
decoding in one pass), the header table (`layout`, mirrored by `pcap_layout.h`), and the
decoder's CSV dump (`dump`, `sgclassify packets`), and `--filter` (`bpf`: libpcap's compiler
through ctypes, the programs run in the core by pcap_bpf.h).

May import `classifier.errors`, `classifier.codes` and `classifier.packets`; never the policy,
the engine or the reports.

    from classifier import pcap
    for batch in pcap.read_batches("big.pcapng", batch_size=65536):   # numpy columns
        batch.src, batch.dst, batch.protocol, batch.sport, batch.dport

Compressed captures (gzip, bzip2, xz, zstd, by their first bytes) are read by path the same
way; `pcap.STDIN` (the command line's `-`) reads standard input.
"""

from classifier.pcap.bpf import CaptureFilter
from classifier.pcap.reader import (
    DEFAULT_BATCH_SIZE,
    LINKTYPE_NAMES,
    STDIN,
    Capture,
    CaptureWarning,
    StandardInput,
    open_capture,
    read_all,
    read_batches,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "LINKTYPE_NAMES",
    "STDIN",
    "Capture",
    "CaptureFilter",
    "CaptureWarning",
    "StandardInput",
    "open_capture",
    "read_all",
    "read_batches",
]
