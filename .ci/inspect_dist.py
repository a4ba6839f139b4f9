"""Check the built wheel and sdist: LICENSE inside both, the wheel's tags, and the newest glibc
symbol version its extension needs (must not pass the manylinux tag's promise). Prints one line
per fact; exits 1 naming the first failed check.

    python .ci/inspect_dist.py dist/synthrank-*.whl dist/synthrank-*.tar.gz
"""

from __future__ import annotations

import re
import sys
import tarfile
import zipfile
from pathlib import Path

GLIBC = re.compile(rb"GLIBC_(\d+)\.(\d+)(?:\.\d+)?\x00")
# manylinux_X_Y / manylinux2014 (= 2_17) in a wheel's platform tag
MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)|manylinux2014")


def fail(message: str) -> None:
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def newest_glibc(shared_object: bytes) -> tuple[int, int]:
    """The highest GLIBC_x.y version the ELF file references (its version-needed strings)."""
    versions = {(int(a), int(b)) for a, b in GLIBC.findall(shared_object)}
    return max(versions) if versions else (0, 0)


def check_wheel(path: Path) -> None:
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        licences = [n for n in names if re.fullmatch(r"[^/]+\.dist-info/licenses/LICENSE", n)]
        if not licences:
            fail(f"{path.name}: no .dist-info/licenses/LICENSE")
        if "Apache License" not in wheel.read(licences[0]).decode("utf-8"):
            fail(f"{path.name}: LICENSE is not the Apache-2.0 text")
        wheel_meta = next(n for n in names if n.endswith(".dist-info/WHEEL"))
        tags = [
            line.split(":", 1)[1].strip()
            for line in wheel.read(wheel_meta).decode().splitlines()
            if line.startswith("Tag:")
        ]
        extensions = [n for n in names if re.search(r"_native[^/]*\.(so|pyd)$", n)]
        if not extensions:
            fail(f"{path.name}: no native extension inside")
        print(f"wheel: {path.name}")
        print(f"size: {path.stat().st_size / 1e6:.2f} MB ({len(names)} files)")
        print(f"tags: {', '.join(tags)}")
        print(f"licence files: {', '.join(n.split('/', 1)[1] for n in names if '/licenses/' in n)}")
        if not extensions[0].endswith(".so"):
            return
        glibc = newest_glibc(wheel.read(extensions[0]))
        print(f"newest glibc symbol: GLIBC_{glibc[0]}.{glibc[1]} ({extensions[0]})")
        for tag in tags:
            promise = MANYLINUX.search(tag)
            if promise is None:
                continue
            limit = (int(promise[1]), int(promise[2])) if promise[1] else (2, 17)
            if glibc > limit:
                fail(f"{tag} promises glibc {limit[0]}.{limit[1]} but the extension needs {glibc}")


def check_sdist(path: Path) -> None:
    with tarfile.open(path) as sdist:
        names = sdist.getnames()
    root = names[0].split("/", 1)[0]
    for required in (
        "LICENSE",
        "pyproject.toml",
        "Cargo.lock",
        "tests/test_dedup.py",
        "tests/fixtures/README.md",
    ):
        if f"{root}/{required}" not in names:
            fail(f"{path.name}: {required} missing")
    size = path.stat().st_size / 1e6
    print(f"sdist: {path.name}: {size:.2f} MB, {len(names)} files, LICENSE and tests inside")


def main(paths: list[str]) -> None:
    if not paths:
        fail("give the wheel and the sdist")
    for name in paths:
        path = Path(name)
        if path.suffix == ".whl":
            check_wheel(path)
        elif path.name.endswith(".tar.gz"):
            check_sdist(path)
        else:
            fail(f"{name}: neither a wheel nor an sdist")


if __name__ == "__main__":
    main(sys.argv[1:])
