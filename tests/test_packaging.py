"""Packaging: `python -m build` on a clean copy of the repository gives an sdist and a wheel
without a warning; the wheel holds only what runs; installed into a fresh virtual environment
it classifies a bundled sample.

Slow (a full build of the extensions in an isolated environment, and a fresh venv with the
dependencies from the package index): marked `slow`, so it runs once in `make test`, in the
compiled pass.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _clean_copy(target: Path) -> Path:
    """The files git tracks (a fresh clone's), with the working tree's changes."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs a git checkout to know which files a clean clone has")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name.decode()
        if source.is_file():
            destination = target / name.decode()
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    return target


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    pytest.importorskip("build", reason="the packaging test needs `build` (the test extra)")
    work = tmp_path_factory.mktemp("packaging")
    source = _clean_copy(work / "src")
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(source)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    sdists = list((work / "dist").glob("*.tar.gz"))
    wheels = list((work / "dist").glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, log[-2000:]
    return sdists[0], wheels[0], log


def test_build_has_no_warning(built: tuple[Path, Path, str]) -> None:
    *_, log = built
    warnings = [line for line in log.splitlines() if "warning" in line.lower()]
    assert warnings == []


def test_wheel_holds_only_what_runs(built: tuple[Path, Path, str]) -> None:
    _, wheel, _ = built
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.endswith((".c", ".pyx", ".pxd", ".h", ".html"))]
    sources = (ROOT / "classifier").rglob("*.pyx")
    compiled = sorted(str(p.relative_to(ROOT).with_suffix("")) for p in sources)
    assert sorted(n.split(".")[0] for n in names if n.endswith(".so")) == compiled
    for needed in (
        "classifier/report/html.css",
        "classifier/py.typed",
        "classifier/acl/data/sample_rules",
        "classifier/pcap/_pcap.pyi",
    ):
        assert needed in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]
    metadata = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        .decode()
    )
    assert "License-Expression: Apache-2.0" in metadata
    assert "Provides-Extra: parquet" in metadata and "Provides-Extra: all" in metadata


def test_sdist_has_the_sources_and_no_generated_files(built: tuple[Path, Path, str]) -> None:
    sdist, _, _ = built
    names = tarfile.open(sdist).getnames()
    assert any(n.endswith("classifier/pcap/_pcap.pyx") for n in names)
    assert any(n.endswith("classifier/csrc/codes.h") for n in names)
    assert any(n.endswith("pcaps/web.pcap") for n in names)
    assert not [n for n in names if n.endswith((".c", ".so")) or "__pycache__" in n]


def test_wheel_installs_and_classifies_a_bundled_sample(
    built: tuple[Path, Path, str], tmp_path: Path
) -> None:
    _, wheel, _ = built
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    script = environment / "bin" / "sgclassify"
    # run outside the repository, so nothing but the installed package can be imported
    done = subprocess.run(
        [str(script), "classify", "--policy", str(ROOT / "examples" / "web-db.yaml"),
         str(ROOT / "pcaps" / "web.pcap"), "--json", str(tmp_path / "s.json")],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("77 packets,")
    probe = subprocess.run(
        [str(python), "-c", "import classifier.pcap._pcap as m, classifier.acl as a; "
         "print(m.__file__); print(len(a.read_classbench_rules(a.SAMPLE_RULES)))"],
        capture_output=True, text=True, cwd=tmp_path, check=True,
    ).stdout.split()  # fmt: skip
    assert str(environment) in probe[0] and probe[0].endswith(".so") and probe[1] == "500"
