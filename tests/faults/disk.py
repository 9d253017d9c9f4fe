"""A small ext4 disk of a test's own, that the kernel turns read-only under a server.

A loop-mounted ext4 file system with `errors=remount-ro`. `fail()` makes the kernel
record a file-system error on it (ext4's `trigger_fs_error`), which is what a disk
error does in production: ext4 remounts itself read-only at once, under every
process that has files open on it. That is the only way Linux turns a file system
read-only while a program holds a file open for writing: `mount -o remount,ro`
refuses ("mount point is busy"), and so does a read-only bind mount.

Such an emergency read-only mount stays read-only until it is unmounted (Linux 6.x
refuses `remount,rw`). So the disk "becomes writable again" the way an operator
makes it so: `replace()` checks a copy of the disk with `e2fsck` and mounts the
copy, writable, over the failed one at the same path. A server that keeps using the
file descriptors it had never sees the new disk; one that reopens its files does.

`fail()` first flushes the file system (`fsfreeze`, which also empties the ext4
journal into place): the error strikes after the kernel wrote back what was
committed. SQLite runs with `synchronous=NORMAL`, which does not flush each commit:
on a disk that fails before write-back, the last commits are lost with the disk's
page cache.

Needs root, `mount`, `mkfs.ext4`, `e2fsck`, `fsfreeze` and ext4's sysfs error
trigger; without them the test is skipped with the reason shown (a failure in CI).
Every method blocks: call them through `anyio.to_thread.run_sync` from async tests.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.needs import missing

#: Size of the disk image (sparse: it takes only what is written).
IMAGE_MEGABYTES = 32
PROGRAMS = ("mount", "umount", "mkfs.ext4", "e2fsck", "findmnt", "fsfreeze")


class DiskUnavailable(Exception):
    """The machine cannot make, mount or fail a loop-mounted ext4 disk."""


class Ext4Disk:
    """An ext4 image mounted at `mountpoint`, which the kernel can be made to fail."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mountpoint = root / "mnt"
        self._images = 0
        self._image = self._new_image_path()

    def create(self) -> None:
        """Make the file system and mount it, writable."""
        if os.geteuid() != 0:
            raise DiskUnavailable("mounting a loop device needs root")
        absent = [name for name in PROGRAMS if shutil.which(name) is None]
        if absent:
            raise DiskUnavailable(f"{', '.join(absent)} not on PATH")
        self.mountpoint.mkdir()
        with self._image.open("wb") as image:
            image.truncate(IMAGE_MEGABYTES << 20)
        _run("mkfs.ext4", "-q", "-F", str(self._image))
        self._mount(self._image)
        if not self._trigger().exists():
            raise DiskUnavailable(f"{self._trigger()} is missing (ext4 without sysfs)")

    @property
    def read_only(self) -> bool:
        """Whether making a file there fails with EROFS (an emergency read-only mount
        does not show in `statvfs` flags)."""
        probe = self.mountpoint / ".write-probe"
        try:
            probe.touch()
        except OSError as exc:
            if exc.errno == errno.EROFS:
                return True
            raise
        probe.unlink()
        return False

    def fail(self) -> None:
        """A disk error: the kernel remounts the file system read-only, at once."""
        # Freezing writes back what was committed and empties the journal into place,
        # so the repaired copy holds it even if e2fsck must discard a journal that
        # the error cut in the middle of a commit.
        _run("fsfreeze", "--freeze", str(self.mountpoint))
        _run("fsfreeze", "--unfreeze", str(self.mountpoint))
        self._trigger().write_text("readerai fault test: disk error\n")
        if not self.read_only:
            raise DiskUnavailable("ext4 did not remount itself read-only")

    def replace(self) -> None:
        """An operator's repair: a checked copy of the disk, writable, at the same path.

        The copy is mounted over the failed disk, not after unmounting it: in between,
        the path would be an empty directory where a new, empty database could be made.
        """
        copy = self._new_image_path()
        shutil.copyfile(self._image, copy)
        # 0: clean, 1: errors corrected (the recorded error, the unfinished journal).
        _run("e2fsck", "-f", "-y", str(copy), ok=(0, 1))
        self._image = copy
        self._mount(copy)

    def destroy(self) -> None:
        """Unmount every disk mounted here (lazily: a server may still hold files) and
        remove the images."""
        with contextlib.suppress(DiskUnavailable):
            while self._mounted():
                _run("umount", "--lazy", str(self.mountpoint))
        shutil.rmtree(self.root, ignore_errors=True)

    def _mount(self, image: Path) -> None:
        _run("mount", "-o", "loop,errors=remount-ro", str(image), str(self.mountpoint))

    def _mounted(self) -> bool:
        found = subprocess.run(
            ["findmnt", "--mountpoint", str(self.mountpoint)], capture_output=True, check=False
        )
        return found.returncode == 0

    def _trigger(self) -> Path:
        sources = _run("findmnt", "-n", "-o", "SOURCE", "--mountpoint", str(self.mountpoint))
        device = sources.split()[-1]  # the disk mounted last, on top
        return Path("/sys/fs/ext4") / Path(device).name / "trigger_fs_error"

    def _new_image_path(self) -> Path:
        self._images += 1
        return self.root / f"disk-{self._images}.img"


def _run(*command: str, ok: tuple[int, ...] = (0,)) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode not in ok:
        raise DiskUnavailable(
            f"{' '.join(command)} exited with {done.returncode}: "
            f"{done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout


@pytest.fixture
def ext4_disk(tmp_path: Path) -> Iterator[Ext4Disk]:
    """A mounted, writable ext4 disk of this test's own; unmounted afterwards."""
    disk = Ext4Disk(tmp_path / "disk")
    disk.root.mkdir()
    try:
        try:
            disk.create()
        except DiskUnavailable as exc:
            missing("a loop-mounted ext4 disk", str(exc))
        yield disk
    finally:
        disk.destroy()
