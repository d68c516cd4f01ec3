"""A throwaway Docker daemon, and a stand-in for the `python:<version>-slim` base image: for the
container room's tests and the benchmark's container part. Standard library only, so that
`make bench` needs no pytest.

    tarball = make_stand_in_rootfs(folder)          # once: Debian's own python3, as files
    with throwaway_docker() as docker:               # dockerd as root, in a folder of its own
        docker.load_stand_in(tarball, "python:3.11.7-slim")
        subprocess.run([...], env=docker.env)        # DOCKER_HOST names it

The daemon runs as root with `--iptables=false --bridge=none` and overlay2 (vfs where overlay2
cannot run), its data root, exec root, pid file and socket in a temporary folder of its own: no
bridge, no firewall rule, no address on a private network. Containers use `--network host`
(bound to 127.0.0.1) or `--network none`. It is stopped, its containers first, then its process
group and its containerd, and its folder deleted, also when the caller fails.

Docker Hub cannot be reached from CI, so the image MLflow's Dockerfile starts FROM,
`python:<the model's Python>-slim`, cannot be pulled. The stand-in is made from Debian's own
packages with debootstrap: Debian 12's python3 (3.11) in a virtual environment at /usr/local,
so that `python` and `pip` are on PATH where the real image has them, and `pip install` works
as it does there. It carries this machine's CA bundle, for the package registries behind its
proxy. A reader's Docker pulls the real image; the lesson's commands never name this one.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import process_groups

DEBIAN_RELEASE = "bookworm"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def missing() -> str | None:
    """Why a throwaway daemon cannot run here, or None."""
    for tool, package in (("dockerd", "docker.io"), ("docker", "docker.io"), ("debootstrap",) * 2):
        if not shutil.which(tool, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"):
            return f"{tool} not found: apt-get install {package}"
    if os.geteuid() != 0:
        return "dockerd needs root here"
    return None


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (debootstrap downloads from it)."""
    mirror = re.compile(r"(?m)^(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s")
    for sources in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        if sources.is_file() and (found := mirror.search(sources.read_text())):
            return found[1]
    return "http://deb.debian.org/debian"


def make_stand_in_rootfs(folder: Path) -> Path:
    """A tarball of Debian 12 minbase with python3 in a venv at /usr/local: the stand-in's files."""
    rootfs, tarball = folder / "rootfs", folder / "python-stand-in.tar"
    sbin = f"/usr/sbin:/sbin:{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": sbin, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    subprocess.run(
        ["debootstrap", "--variant=minbase", "--include=python3-venv"]
        + [DEBIAN_RELEASE, str(rootfs), debian_mirror()],
        env=env,
        check=True,
        capture_output=True,
        timeout=900,
    )
    # `python` and `pip` first on PATH, and pip free to install (Debian's own python3 is
    # "externally managed", PEP 668), as in the real python image.
    subprocess.run(
        ["chroot", str(rootfs), "/usr/bin/python3", "-m", "venv", "/usr/local"],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    certs = rootfs / "etc" / "ssl" / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CA_BUNDLE, certs / CA_BUNDLE.name)
    (rootfs / "etc" / "pip.conf").write_text(f"[global]\ncert = {CA_BUNDLE}\n")
    # apt as Debian's official images set it up (their /etc/apt/apt.conf.d/docker-*): no
    # package cache or downloaded .debs kept, no translations, so that what a Dockerfile's
    # `apt-get install` adds weighs here what it weighs on the real image.
    (rootfs / "etc" / "apt" / "apt.conf.d" / "docker-clean").write_text(
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
    )
    (rootfs / "etc" / "apt" / "apt.conf.d" / "docker-no-languages").write_text(
        'Acquire::Languages "none";\n'
    )
    # The downloaded .debs and package lists: the real image has neither.
    for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (rootfs / leftovers).glob("*"):
            if path.is_file():
                path.unlink()
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True, timeout=300)
    shutil.rmtree(rootfs)
    return tarball


@dataclass
class Docker:
    folder: Path
    process: subprocess.Popen

    @property
    def host(self) -> str:
        return f"unix://{self.folder / 'docker.sock'}"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def run(self, *args: str, timeout: float = 600, check: bool = True, **kwargs):
        return subprocess.run(
            ["docker", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            **kwargs,
        )

    def load_stand_in(self, tarball: Path, tag: str) -> None:
        """`docker import` the stand-in's files as `tag`, with the real image's LANG and CMD."""
        with open(tarball, "rb") as files:
            self.run(
                "import",
                "--change",
                "ENV LANG=C.UTF-8",
                "--change",
                'CMD ["python3"]',
                "-",
                tag,
                stdin=files,
            )


def start_dockerd(folder: Path, driver: str) -> Docker | None:
    """dockerd with `driver`, answering on its socket; None if it cannot run with that driver."""
    dockerd = shutil.which("dockerd", path="/usr/sbin:/sbin:/usr/bin:/bin")
    with open(folder / "dockerd.log", "a") as log:
        process = subprocess.Popen(
            [dockerd, "--config-file", folder / "daemon.json", f"--storage-driver={driver}"]
            + ["--iptables=false", "--ip-masq=false", "--bridge=none", "--log-level=warn"]
            + ["--data-root", folder / "data", "--exec-root", folder / "exec"]
            + ["--pidfile", folder / "docker.pid", "-H", f"unix://{folder / 'docker.sock'}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    docker = Docker(folder, process)
    deadline = time.monotonic() + 60
    while docker.run("info", check=False, timeout=30).returncode:
        if process.poll() is not None or time.monotonic() > deadline:
            stop_dockerd(docker)
            return None
        time.sleep(0.5)
    return docker


def stop_dockerd(docker: Docker) -> None:
    """Its containers first, while it answers; then the daemon and its containerd, by group."""
    if docker.process.poll() is None:
        with contextlib.suppress(Exception):
            running = docker.run("ps", "-aq", check=False, timeout=30).stdout.split()
            if running:
                docker.run("rm", "-f", *running, check=False, timeout=120)
    process_groups.stop_process(docker.process, signal.SIGTERM, 30)
    # The containerd it started has a session of its own; a dockerd that stopped cleanly
    # stopped it too, else its pid file names it.
    containerd = docker.folder / "exec" / "containerd" / "containerd.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(containerd.read_text())
        if f"{docker.folder}/" in Path(f"/proc/{pid}/cmdline").read_text():
            os.kill(pid, signal.SIGKILL)
    # What dockerd leaves mounted in its folder (its network namespace's handle, say).
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{docker.folder}/")), reverse=True):
        subprocess.run(["umount", "--lazy", mount], capture_output=True)
    shutil.rmtree(docker.folder / "data", ignore_errors=True)
    shutil.rmtree(docker.folder / "exec", ignore_errors=True)


@contextlib.contextmanager
def throwaway_docker():
    why = missing()
    if why:
        raise FileNotFoundError(why)
    # Short: containerd's sockets live under the exec root, and a socket path has 107 bytes.
    folder = Path(tempfile.mkdtemp(prefix="dockerd-"))
    (folder / "daemon.json").write_text("{}\n")  # not /etc/docker/daemon.json
    try:
        # overlay2 where the kernel and the file system allow it (layers shared, a build in a
        # minute or two); vfs everywhere else (every layer a full copy: several times slower).
        docker = start_dockerd(folder, "overlay2") or start_dockerd(folder, "vfs")
        if docker is None:
            log = (folder / "dockerd.log").read_text().strip().splitlines()
            raise RuntimeError(f"dockerd did not start: {log[-1] if log else 'no log'}")
        try:
            yield docker
        finally:
            stop_dockerd(docker)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
