"""The official validation artefacts: manifest, install, verify, and the paths the engine reads.

``ubl_schemas/manifest.json`` lists every artefact set the engine knows (UBL 2.1 XSD, the CEN
EN 16931 stylesheets, OpenPeppol releases) with its official source, the dates it is in force and
the sha256 and size of every file. The files themselves are installed under ``Settings.rules_dir``
with the same relative layout as the source (``<rules_dir>/<set id>/<relpath>``) and are never
committed.

Cost model: hashes are checked when installing and by ``verify`` (``einvoice rules verify``);
``path`` only checks that the file exists and has the recorded size (one ``stat``), so it can be
called per document.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from einvoice.errors import ArtefactCorruptError, ArtefactError, ArtefactMissingError
from einvoice.settings import PROJECT_ROOT, Settings

__all__ = [
    "DEFAULT_SHARED_RULES",
    "MANIFEST_PATH",
    "ArtefactFile",
    "ArtefactSet",
    "InstallResult",
    "Manifest",
    "SetStatus",
    "build_manifest",
    "check_installed",
    "install",
    "load_manifest",
    "path",
    "status",
    "verify",
    "write_manifest",
]

MANIFEST_PATH = PROJECT_ROOT / "ubl_schemas" / "manifest.json"
DEFAULT_SHARED_RULES = PROJECT_ROOT.parent / "shared" / "rules"
INSTALL_HINT = "run 'einvoice rules install'"
DOWNLOAD_TIMEOUT_SECONDS = 60
DOWNLOAD_MAX_BYTES = 200 * 1024 * 1024
_CHUNK = 1024 * 1024


# --- manifest model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArtefactFile:
    relpath: str  # POSIX path inside the set's folder
    sha256: str
    size: int


@dataclass(frozen=True)
class Source:
    """Where a set comes from officially. ``url`` None: no single official archive to download."""

    url: str | None
    archive_prefix: str = ""  # folder inside the archive that maps to the set's folder
    path_map: tuple[tuple[str, str], ...] = ()  # (installed prefix, archive prefix) where they differ
    homepage: str | None = None
    note: str | None = None

    def archive_path(self, relpath: str) -> str:
        """The member path of ``relpath`` inside the official archive (below any top folder)."""
        for installed, archived in self.path_map:
            if relpath.startswith(installed):
                relpath = archived + relpath[len(installed) :]
                break
        return self.archive_prefix + relpath


@dataclass(frozen=True)
class ArtefactSet:
    id: str
    family: str  # "ubl" | "en16931" | "peppol-bis3"
    title: str
    version: str
    in_force_from: date
    in_force_until: date | None
    source: Source
    files: tuple[ArtefactFile, ...]
    _by_relpath: dict[str, ArtefactFile] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_relpath.update({f.relpath: f for f in self.files})

    def file(self, relpath: str) -> ArtefactFile | None:
        return self._by_relpath.get(relpath)

    def in_force(self, at: date) -> bool:
        return self.in_force_from <= at and (self.in_force_until is None or at <= self.in_force_until)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class Manifest:
    sets: tuple[ArtefactSet, ...]
    source_path: Path | None = None

    def get(self, set_id: str) -> ArtefactSet:
        """Return the set; raise ``ArtefactMissingError`` if the manifest does not list it."""
        for artefact_set in self.sets:
            if artefact_set.id == set_id:
                return artefact_set
        known = ", ".join(s.id for s in self.sets)
        raise ArtefactMissingError(f"artefact set '{set_id}' is not in the manifest (known: {known})")

    def family(self, family: str) -> tuple[ArtefactSet, ...]:
        return tuple(s for s in self.sets if s.family == family)


def _set_from_dict(raw: dict[str, Any]) -> ArtefactSet:
    source = raw.get("source") or {}
    return ArtefactSet(
        id=raw["id"],
        family=raw["family"],
        title=raw["title"],
        version=raw["version"],
        in_force_from=date.fromisoformat(raw["in_force_from"]),
        in_force_until=date.fromisoformat(raw["in_force_until"]) if raw.get("in_force_until") else None,
        source=Source(
            url=source.get("url"),
            archive_prefix=source.get("archive_prefix", ""),
            path_map=tuple((k, v) for k, v in (source.get("path_map") or {}).items()),
            homepage=source.get("homepage"),
            note=source.get("note"),
        ),
        files=tuple(ArtefactFile(f["path"], f["sha256"], int(f["size"])) for f in raw["files"]),
    )


def parse_manifest(raw: dict[str, Any], source_path: Path | None = None) -> Manifest:
    """Build a ``Manifest`` from its JSON form; raise ``ArtefactError`` if it is malformed."""
    try:
        return Manifest(tuple(_set_from_dict(s) for s in raw["sets"]), source_path)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtefactError(f"malformed artefact manifest {source_path or ''}: {exc!r}") from None


_cache: dict[Path, tuple[float, Manifest]] = {}
_cache_lock = threading.Lock()


def load_manifest(manifest_path: Path | None = None) -> Manifest:
    """Read (and cache, by modification time) the manifest; raise ``ArtefactError`` if unreadable."""
    manifest_path = manifest_path or MANIFEST_PATH  # not resolved: this runs per document
    try:
        mtime = manifest_path.stat().st_mtime
    except OSError:
        raise ArtefactError(f"artefact manifest not found: {manifest_path}") from None
    with _cache_lock:
        cached = _cache.get(manifest_path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtefactError(f"artefact manifest unreadable: {manifest_path}: {exc}") from None
    manifest = parse_manifest(raw, manifest_path)
    with _cache_lock:
        _cache[manifest_path] = (mtime, manifest)
    return manifest


def _sha256_file(file_path: Path) -> str:
    digest = hashlib.sha256()
    with file_path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_manifest(source_dir: Path, manifest_path: Path | None = None) -> dict[str, Any]:
    """Recompute the file lists (path, sha256, size) of every set from ``source_dir/<set id>/``.

    Everything else (titles, sources, dates) is kept from the current manifest. Returns the JSON
    form; raises ``ArtefactError`` if a set's folder is missing. Maintainer tool: the result is
    what ``write_manifest`` stores and what gets committed.
    """
    manifest_path = manifest_path or MANIFEST_PATH
    raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    for raw_set in raw["sets"]:
        folder = source_dir / raw_set["id"]
        if not folder.is_dir():
            raise ArtefactError(f"no folder for artefact set '{raw_set['id']}' under {source_dir}")
        files = []
        for file_path in sorted(p for p in folder.rglob("*") if p.is_file()):
            files.append(
                {
                    "path": file_path.relative_to(folder).as_posix(),
                    "sha256": _sha256_file(file_path),
                    "size": file_path.stat().st_size,
                }
            )
        raw_set["files"] = files
    return raw


def write_manifest(raw: dict[str, Any], manifest_path: Path | None = None) -> Path:
    """Write the manifest's JSON form (sorted file lists, stable formatting); return the path."""
    manifest_path = manifest_path or MANIFEST_PATH
    text = json.dumps(raw, indent=2, ensure_ascii=False) + "\n"
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(manifest_path)
    return manifest_path


# --- run-time access -----------------------------------------------------------------------------


def _settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else Settings()


def path(set_id: str, relpath: str, settings: Settings | None = None, *, manifest: Manifest | None = None) -> Path:
    """Return the installed file ``<rules_dir>/<set_id>/<relpath>``.

    Checks the manifest lists it, that it exists and has the recorded size (not its hash: that is
    ``verify``'s job). Raises ``ArtefactMissingError`` (naming the file, telling to run
    ``einvoice rules install``) or ``ArtefactCorruptError`` (wrong size).
    """
    manifest = manifest or load_manifest()
    artefact_set = manifest.get(set_id)
    entry = artefact_set.file(relpath)
    if entry is None:
        raise ArtefactMissingError(f"artefact '{set_id}/{relpath}' is not in the manifest")
    file_path = _settings(settings).rules_dir / set_id / relpath
    try:
        size = file_path.stat().st_size
    except OSError:
        raise ArtefactMissingError(f"artefact not installed: {file_path} ({INSTALL_HINT})") from None
    if size != entry.size:
        raise ArtefactCorruptError(
            f"artefact corrupt: {file_path} has {size} bytes, the manifest says {entry.size} ({INSTALL_HINT})"
        )
    return file_path


def _verify_set(artefact_set: ArtefactSet, rules_dir: Path) -> None:
    folder = rules_dir / artefact_set.id
    for entry in artefact_set.files:
        file_path = folder / entry.relpath
        if not file_path.is_file():
            raise ArtefactMissingError(f"artefact not installed: {file_path} ({INSTALL_HINT})")
        if file_path.stat().st_size != entry.size or _sha256_file(file_path) != entry.sha256:
            raise ArtefactCorruptError(
                f"artefact corrupt: {file_path} does not have the sha256 in the manifest ({INSTALL_HINT})"
            )


def verify(
    set_id: str | None = None,
    settings: Settings | None = None,
    *,
    rules_dir: Path | None = None,
    manifest: Manifest | None = None,
) -> list[str]:
    """Hash-check the installed files of one set (or all); return the ids verified.

    Raises ``ArtefactMissingError`` or ``ArtefactCorruptError`` naming the first bad file.
    """
    manifest = manifest or load_manifest()
    rules_dir = rules_dir or _settings(settings).rules_dir
    sets = [manifest.get(set_id)] if set_id else list(manifest.sets)
    for artefact_set in sets:
        _verify_set(artefact_set, rules_dir)
    return [s.id for s in sets]


@dataclass(frozen=True)
class SetStatus:
    artefact_set: ArtefactSet
    installed: bool  # every file present
    verified: bool | None  # hashes match (None: not checked)
    problem: str | None  # first problem found, one line


def status(
    settings: Settings | None = None,
    *,
    rules_dir: Path | None = None,
    manifest: Manifest | None = None,
    hashes: bool = True,
) -> list[SetStatus]:
    """The state of every set: installed, verified (hashing costs ~30 ms for 9 MB), first problem."""
    manifest = manifest or load_manifest()
    rules_dir = rules_dir or _settings(settings).rules_dir
    result = []
    for artefact_set in manifest.sets:
        folder = rules_dir / artefact_set.id
        missing = [f for f in artefact_set.files if not (folder / f.relpath).is_file()]
        if missing:
            problem = f"not installed: {folder / missing[0].relpath}"
            result.append(SetStatus(artefact_set, False, False if folder.exists() else None, problem))
            continue
        if not hashes:
            result.append(SetStatus(artefact_set, True, None, None))
            continue
        try:
            _verify_set(artefact_set, rules_dir)
        except ArtefactError as exc:
            result.append(SetStatus(artefact_set, True, False, str(exc)))
        else:
            result.append(SetStatus(artefact_set, True, True, None))
    return result


def check_installed(settings: Settings | None = None) -> str:
    """Cheap readiness check (existence and sizes, no hashing): 'ok' or a one-line problem."""
    try:
        manifest = load_manifest()
        for artefact_set in manifest.sets:
            for entry in artefact_set.files:
                path(artefact_set.id, entry.relpath, settings, manifest=manifest)
    except ArtefactError as exc:
        return str(exc)
    return "ok"


# --- install -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstallResult:
    source: str  # what was installed from, for the message
    installed: tuple[str, ...]  # set ids written
    already: bool  # nothing to do: every set was installed and verified


Reporter = Callable[[str], None]


def _no_report(_: str) -> None:
    return None


class _Reader:
    """Opens the files of a set from a directory or a zip archive."""

    def __init__(self, description: str) -> None:
        self.description = description

    def open(self, artefact_set: ArtefactSet, entry: ArtefactFile) -> BinaryIO:
        raise NotImplementedError

    def close(self) -> None:
        return None


class _DirReader(_Reader):
    def __init__(self, root: Path) -> None:
        super().__init__(str(root))
        self.root = root

    def open(self, artefact_set: ArtefactSet, entry: ArtefactFile) -> BinaryIO:
        file_path = self.root / artefact_set.id / entry.relpath
        try:
            return file_path.open("rb")
        except OSError:
            raise ArtefactMissingError(f"source has no {file_path}") from None


def _safe_member(name: str) -> bool:
    posix = PurePosixPath(name.replace("\\", "/"))
    return not (posix.is_absolute() or ".." in posix.parts or (posix.parts and ":" in posix.parts[0]))


class _ZipReader(_Reader):
    """Finds each file either as ``[top/]<set id>/<relpath>`` or at its official archive path."""

    def __init__(self, archive: Path, description: str | None = None) -> None:
        super().__init__(description or str(archive))
        try:
            self.zip = zipfile.ZipFile(archive)
        except (OSError, zipfile.BadZipFile) as exc:
            raise ArtefactError(f"not a readable zip archive: {archive}: {exc}") from None
        names = [info.filename for info in self.zip.infolist()]
        for name in names:
            if not _safe_member(name):
                self.zip.close()
                raise ArtefactError(f"refusing archive {archive}: unsafe member path '{name}'")
        self.names = {n: n for n in names if not n.endswith("/")}

    def _find(self, suffix: str) -> str | None:
        if suffix in self.names:
            return suffix
        matches = [n for n in self.names if n.endswith("/" + suffix)]
        return min(matches, key=len) if matches else None

    def open(self, artefact_set: ArtefactSet, entry: ArtefactFile) -> BinaryIO:
        member = self._find(f"{artefact_set.id}/{entry.relpath}") or self._find(
            artefact_set.source.archive_path(entry.relpath)
        )
        if member is None:
            raise ArtefactMissingError(f"archive {self.description} has no {artefact_set.id}/{entry.relpath}")
        return self.zip.open(member)  # type: ignore[return-value]  # ZipExtFile is a binary stream

    def close(self) -> None:
        self.zip.close()


def _download(url: str, target: Path, report: Reporter) -> None:
    if not url.startswith("https://"):
        raise ArtefactError(f"refusing to download artefacts over a non-https URL: {url}")
    report(f"downloading {url}")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response, target.open("wb") as out:  # noqa: S310 - https only, checked above
            total = 0
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                total += len(chunk)
                if total > DOWNLOAD_MAX_BYTES:
                    raise ArtefactError(f"download of {url} exceeds {DOWNLOAD_MAX_BYTES:,} bytes")
                out.write(chunk)
    except OSError as exc:
        raise ArtefactError(f"cannot download {url}: {exc}") from None


def _copy_verified(source: BinaryIO, target: Path, entry: ArtefactFile, origin: str) -> None:
    digest = hashlib.sha256()
    size = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with source, target.open("wb") as out:
        for chunk in iter(lambda: source.read(_CHUNK), b""):
            size += len(chunk)
            if size > entry.size:  # also bounds what a hostile archive can make us write
                break
            digest.update(chunk)
            out.write(chunk)
    if size != entry.size or digest.hexdigest() != entry.sha256:
        raise ArtefactCorruptError(
            f"{origin}: {entry.relpath} does not match the manifest (sha256/size differ); nothing was installed"
        )


def _resolve_source(source: str | Path | None, settings: Settings) -> str | Path | None:
    if source:
        return source
    if settings.rules_source:
        return settings.rules_source
    if DEFAULT_SHARED_RULES.is_dir():
        return DEFAULT_SHARED_RULES
    return None  # official download


@dataclass
class _Staging:
    rules_dir: Path
    folder: Path = field(init=False)

    def __post_init__(self) -> None:
        self.rules_dir.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.rules_dir))

    def swap_in(self, set_ids: Iterable[str]) -> None:
        """Replace each installed set by the staged one: two renames per set, old copy removed."""
        for set_id in set_ids:
            final = self.rules_dir / set_id
            old: Path | None = None
            if final.exists():
                old = Path(tempfile.mkdtemp(prefix=f".old-{set_id}-", dir=self.rules_dir))
                old.rmdir()
                final.rename(old)
            (self.folder / set_id).rename(final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _readers(
    source: str | Path | None, manifest: Manifest, work: Path, report: Reporter
) -> Iterator[tuple[_Reader, tuple[ArtefactSet, ...]]]:
    """Yield (reader, sets to read from it): one reader for a dir or zip, one per archive when downloading."""
    if source is not None and str(source).startswith(("https://", "http://")):
        archive = work / "source.zip"
        _download(str(source), archive, report)
        yield _ZipReader(archive, str(source)), manifest.sets
        return
    if source is not None:
        source_path = Path(source).expanduser()
        if source_path.is_dir():
            yield _DirReader(source_path), manifest.sets
        elif source_path.is_file():
            yield _ZipReader(source_path), manifest.sets
        else:
            raise ArtefactMissingError(f"artefact source not found: {source_path}")
        return
    for artefact_set in manifest.sets:  # before downloading anything
        if not artefact_set.source.url:
            hint = f" ({artefact_set.source.note})" if artefact_set.source.note else ""
            raise ArtefactError(f"no official download for '{artefact_set.id}': install with --from DIR_OR_ZIP{hint}")
    for artefact_set in manifest.sets:
        url = str(artefact_set.source.url)
        archive = work / f"{artefact_set.id}.zip"
        _download(url, archive, report)
        yield _ZipReader(archive, url), (artefact_set,)


def install(
    source: str | Path | None = None,
    settings: Settings | None = None,
    *,
    rules_dir: Path | None = None,
    force: bool = False,
    manifest: Manifest | None = None,
    report: Reporter = _no_report,
) -> InstallResult:
    """Install every set of the manifest into ``rules_dir`` (default ``Settings.rules_dir``).

    Source order: ``source`` (directory, zip, or https URL of a zip), ``Settings.rules_source``, ``../shared/rules``
    next to the repository, then each set's official download. Every file is checked against the
    manifest's sha256 while it is copied into a staging folder; only when all are right are the
    sets renamed into place, so a failure leaves the previous install as it was. Already installed
    and verified: returns at once with ``already=True`` (unless ``force``).
    Raises ``ArtefactMissingError``/``ArtefactCorruptError``/``ArtefactError`` with one-line messages.
    """
    settings = _settings(settings)
    rules_dir = (rules_dir or settings.rules_dir).expanduser()
    manifest = manifest or load_manifest()
    if not force and all(s.verified for s in status(rules_dir=rules_dir, manifest=manifest)):
        return InstallResult(str(rules_dir), (), True)
    chosen = _resolve_source(source, settings)
    staging = _Staging(rules_dir)
    descriptions: list[str] = []
    try:
        work = staging.folder / ".download"
        work.mkdir()
        for reader, sets in _readers(chosen, manifest, work, report):
            descriptions.append(reader.description)
            try:
                for artefact_set in sets:
                    report(f"{artefact_set.id}: {len(artefact_set.files)} files from {reader.description}")
                    for entry in artefact_set.files:
                        _copy_verified(
                            reader.open(artefact_set, entry),
                            staging.folder / artefact_set.id / entry.relpath,
                            entry,
                            reader.description,
                        )
            finally:
                reader.close()
        staging.swap_in(s.id for s in manifest.sets)
    finally:
        staging.discard()
    return InstallResult(", ".join(dict.fromkeys(descriptions)), tuple(s.id for s in manifest.sets), False)
