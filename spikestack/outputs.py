"""Output paths: refuse, before any work starts, those that would destroy an input or cannot be
written; write every file atomically, so a failure never leaves half a file or loses the old one.

`check_outputs` compares resolved paths (`os.path.realpath`: symlinks followed) and, where both
exist, inodes (`os.path.samefile`: hard links too). `write_atomically` hands the writer a hidden
temporary file beside the target, with the target's suffix (numpy, matplotlib and h5py pick their
format from it), then renames it over the target: a rename within one directory is atomic on POSIX.
A leaf: imports only `spikestack.errors` and the standard library.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable, Iterable, Mapping, Union

from spikestack.errors import OutputPathError

PathLike = Union[str, os.PathLike]


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _same(a: Path, b: Path) -> bool:
    """Whether writing `a` would write `b`: same resolved path, or the same inode (a hard link)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: Path, directory: Path) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(directory)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def _check_writable_dir(option: str, path: Path, directory: Path, creatable: bool) -> None:
    """`directory` must be a writable directory; with `creatable`, a missing one may be created
    (its nearest existing ancestor must then be a writable directory)."""
    existing = directory
    while not existing.exists() and existing.parent != existing:
        if existing.is_symlink():  # a dangling link: nothing can be created through it
            raise OutputPathError(f"{option} {path}: {existing} is a broken symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"{option} {path}: {existing} is a file, not a directory")
    if existing != directory and not creatable:
        raise OutputPathError(f"{option} {path}: directory {directory} does not exist")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"{option} {path}: directory {existing} is not writable")


def _check_file(option: str, path: Path, make_parents: bool) -> None:
    if path.is_dir():
        raise OutputPathError(f"{option} {path}: is a directory; give a file path")
    _check_writable_dir(option, path, path.parent, make_parents)


def _check_directory(option: str, path: Path) -> None:
    if _exists(path) and not path.is_dir():
        raise OutputPathError(f"{option} {path}: is a file, not a directory")
    _check_writable_dir(option, path, path, creatable=True)


def _written(path: Path, option: str, contents: Mapping[str, Iterable[str]]) -> list[Path]:
    """The files an output writes: itself, or for a directory the names it writes inside (itself,
    when they are not known)."""
    if not contents.get(option):
        return [path]
    files = [path / name for name in contents[option]]
    for file in files:  # a name taken by a directory (or a parent taken by a file) fails late: refuse now
        for parent in reversed(file.relative_to(path).parents[:-1]):
            if (path / parent).exists() and not (path / parent).is_dir():
                raise OutputPathError(f"{option} {path}: {path / parent} is a file, where a directory is written")
        if file.is_dir():
            raise OutputPathError(f"{option} {path}: {file} is a directory, where a file is written")
    return files


def check_outputs(outputs: Mapping[str, PathLike | None], inputs: Mapping[str, PathLike | None],
                  directories: Iterable[str] | Mapping[str, Iterable[str]] = (), *,
                  make_parents: bool = False) -> None:
    """Refuse (`OutputPathError`, naming the option and both paths) any output that is an input,
    two outputs that are one file, or a path that cannot be written.

    outputs / inputs: option name (or label, e.g. 'GRAPH') -> path; None entries are skipped, and so
    are inputs that do not exist (a dataset name such as 'digits'; a missing file fails on reading).
    directories: the outputs that are directories (created if missing); as a mapping, each with the
    relative file names written into it, which must not be inputs. An input directory (a dataset)
    may not contain any output. make_parents: a missing parent of an output file will be created.
    """
    contents = directories if isinstance(directories, Mapping) else {name: () for name in directories}
    for option, value in outputs.items():
        if value is not None and str(value).strip() == "":
            raise OutputPathError(f"{option}: empty path")
    given = {k: Path(v) for k, v in outputs.items() if v is not None}
    sources = {k: Path(v) for k, v in inputs.items() if v is not None and _exists(Path(v))}
    written: list[tuple[str, Path]] = []
    for option, path in given.items():
        if option in contents:
            _check_directory(option, path)
        else:
            _check_file(option, path, make_parents)
        written += [(option, file) for file in _written(path, option, contents)]
    for option, file in written:
        for label, source in sources.items():
            if source.is_dir() and _inside(file, source):
                raise OutputPathError(f"{option} {given[option]} would write {file} inside {label} {source}, "
                                      "an input directory; choose another path")
            if not source.is_dir() and _same(file, source):
                where = "" if file == given[option] else f" (it writes {file.relative_to(given[option])} there)"
                raise OutputPathError(f"{option} {given[option]} would overwrite {label} {source}{where}, an input; "
                                      "choose another path")
    for i, (option, file) in enumerate(written):
        for other, second in written[i + 1:]:
            if other != option and _same(file, second):
                raise OutputPathError(f"{option} {given[option]} and {other} {given[other]} both write {file}; "
                                      "choose two paths")


def ensure_directory(path: PathLike, option: str = "output directory") -> Path:
    """`mkdir -p path`, or one-line `OutputPathError` naming the option and why not."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputPathError(f"{option} {path}: is a file, not a directory") from None
    except OSError as exc:
        raise OutputPathError(f"{option} {path}: cannot create the directory ({exc.strerror or exc})") from None
    return path


def _temporary(path: Path) -> Path:
    """A new hidden file beside `path`, mode 0666 less the umask (as `open` would create the target)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise OutputPathError(f"{path}: cannot create a temporary file beside it")


def _sync(path: Path) -> None:
    """Flush the temporary file to disk before the rename, so a crash cannot leave an empty target."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary path in `path`'s directory, then rename it to `path`.

    On any exception the temporary file is removed and the exception re-raised (an `OSError`, such
    as a full disk or a read-only directory, as one-line `OutputPathError`): `path` keeps its
    previous content, or stays absent. Returns `path`."""
    path = Path(path)
    tmp = None
    try:
        tmp = _temporary(path)
        write(tmp)
        _sync(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            try:
                tmp.unlink()
            except OSError:
                pass
        if isinstance(exc, OSError):
            raise OutputPathError(f"{path}: cannot write ({exc.strerror or exc})") from None
        raise
    return path


def write_text(path: PathLike, text: str) -> Path:
    """`Path.write_text(text, encoding='utf-8')`, atomically."""
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
