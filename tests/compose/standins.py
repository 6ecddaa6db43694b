"""Local stand-ins for the base images the compose file names (no image registry is reachable).

A debootstrap rootfs of Debian bookworm (the suite the official python:3.11-slim, postgres:15
and redis:7 images build on) is imported once, then each stand-in is built on it from
Debian's packages with a Dockerfile under standins/.
"""

import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.compose.engine import DockerEngine

SUITE = "bookworm"
BASE_IMAGE = f"compose-test/debian:{SUITE}-minbase"
STANDINS_DIR = Path(__file__).parent / "standins"
# image the project names -> stand-in folder
STANDINS = {"python:3.11-slim": "python", "postgres:15": "postgres", "redis:7": "redis"}
# Host files a python build needs to reach PyPI from here: the CA bundle and pip's settings.
HOST_FILES = ("etc/ssl/certs/ca-certificates.crt", "etc/pip.conf", "etc/xdg/pip")


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The machine's Debian archive URI, read from its apt sources (deb822 or one-line)."""
    for path in sorted(apt_dir.glob("sources.list.d/*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(line.split(":", 1) for line in stanza.splitlines() if ":" in line[:20])
            uris = fields.get("URIs", "").split()
            suites = fields.get("Suites", "").split()
            if uris and any(s.isalpha() for s in suites) and "main" in fields.get("Components", ""):
                return uris[0].rstrip("/")
    for path in [apt_dir / "sources.list", *sorted(apt_dir.glob("sources.list.d/*.list"))]:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            words = [w for w in line.split() if not w.startswith("[")]
            if len(words) >= 4 and words[0] == "deb" and words[2].isalpha():
                return words[1].rstrip("/")
    raise RuntimeError(f"no Debian archive found in {apt_dir}/sources.list*")


def rootfs_tarball(cache: Path, mirror: str) -> Path:
    """A minbase rootfs as a tarball, made once by debootstrap and kept in the cache."""
    tarball = cache / f"debian-{SUITE}-minbase.tar"
    if tarball.exists():
        return tarball
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            ["debootstrap", "--variant=minbase", SUITE, str(rootfs), mirror],
            check=True,
            capture_output=True,
            timeout=900,
        )
        sources = rootfs / "etc/apt/sources.list"
        sources.write_text(f"deb {mirror} {SUITE} main\ndeb {mirror} {SUITE}-updates main\n")
        # Slim like the official images: no package lists, no docs, and none installed later.
        (rootfs / "etc/dpkg/dpkg.cfg.d/slim").write_text(
            "".join(f"path-exclude /usr/share/{d}/*\n" for d in ("doc", "man", "info"))
        )
        for folder in ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man"):
            shutil.rmtree(rootfs / folder, ignore_errors=True)
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True)
        partial = tarball.with_suffix(".part")
        subprocess.run(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."],
            check=True,
            timeout=300,
        )
        partial.rename(tarball)
    return tarball


def build_standin(engine: DockerEngine, image: str, folder: str) -> None:
    """Build one stand-in from its folder, with the host files it may need beside it."""
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp)
        shutil.copytree(STANDINS_DIR / folder, context, dirs_exist_ok=True)
        for name in HOST_FILES:
            source = Path("/") / name
            target = context / "host" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target)
            elif source.exists():
                shutil.copy2(source, target)
        engine.docker(
            "build",
            "--network=host",
            f"--build-arg=BASE={BASE_IMAGE}",
            f"--tag={image}",
            str(context),
            timeout=900,
        )


def build_standins(engine: DockerEngine, cache: Path) -> None:
    """Import the base rootfs (once), then build the stand-ins on it side by side."""
    if engine.docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        tarball = rootfs_tarball(cache, debian_mirror())
        engine.docker("import", str(tarball), BASE_IMAGE, timeout=600)
    # Mostly downloads and unpacking: three at once beat three in a row, even on two cores.
    with ThreadPoolExecutor(max_workers=len(STANDINS)) as pool:
        builds = [pool.submit(build_standin, engine, *item) for item in STANDINS.items()]
        for build in builds:
            build.result()
