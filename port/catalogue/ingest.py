"""Apply an index result to the catalogue: one transaction, idempotent, diff-based.

Every row is compared before it is written, so ingesting what the catalogue already
holds issues no INSERT, UPDATE or DELETE on catalogue tables. Only the IndexRun row
(and its errors) records that the run happened.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import semver
from sqlalchemy import insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from indexer.refs import CHANNELS, TAGS
from indexer.result import WHOLE_RELEASES, FoundRelease, IndexResult
from indexer.tags import parse_tag
from indexer.urls import is_oci, redact
from manifests.capabilities import stored_capability
from manifests.errors import ManifestError
from manifests.selectors import stored_form
from manifests.specs import AppSpec, FlavourSpec
from port.catalogue.models import App, AppLogo, Flavour, IndexRunError, Release, Repo
from port.orm import Base, utcnow

# Core tables for the bulk INSERTs: the ORM's bulk path runs one statement per row here.
RELEASES = Base.metadata.tables["releases"]
FLAVOURS = Base.metadata.tables["flavours"]


@dataclass(slots=True)
class Changes:
    """What one ingest did. ``str()`` of each entry is how a person reads it
    (``stardist 0.4.10``, ``stardist 0.4.10: flavours.cpu.image``), as runs store it."""

    added: list[ReleaseRef] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    withdrawn: list[ReleaseRef] = field(default_factory=list)
    errors: list[ManifestError] = field(default_factory=list)


@dataclass(frozen=True, order=True, slots=True)
class ReleaseRef:
    """One release, by app identifier and version."""

    app: str
    version: str

    def __str__(self) -> str:
        return f"{self.app} {self.version}"


@dataclass(frozen=True, slots=True)
class Change:
    """What changed about a release: fields (``commit, flavours.cpu.image``) or where."""

    release: ReleaseRef
    what: str

    def __str__(self) -> str:
        return f"{self.release}: {self.what}"


def _app_meta(app: AppSpec) -> dict[str, Any]:
    return {
        "name": app.name,
        "description": app.description,
        "logo": app.logo,
        "homepage": app.homepage,
        "license": app.license,
        "author": app.author,
        "categories": list(app.categories),
        "scopes": list(app.scopes),
        "requirements": [dataclasses.asdict(r) for r in app.requirements],
    }


def _flavour_row(position: int, spec: FlavourSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "position": position,
        "image": spec.image,
        "selectors": [stored_form(s) for s in spec.selectors],
        "capabilities": [stored_capability(c) for c in spec.capabilities],
        "cpus": spec.resources.cpus,
        "memory": spec.resources.memory,
        "read_only": spec.sandbox.read_only,
        "non_root": spec.sandbox.non_root,
        "run": spec.run.as_json(),
    }


def _set(obj: object, values: dict[str, Any]) -> list[str]:
    """Assign only the fields that differ; return their names (empty: nothing written)."""
    differing = [k for k, v in values.items() if getattr(obj, k) != v]
    for key in differing:
        setattr(obj, key, values[key])
    return differing


def _newer(version: str, than: str | None) -> bool:
    return than is None or semver.Version.parse(version) > semver.Version.parse(than)


def _apply_meta(app: App, version: str, meta: dict[str, Any]) -> None:
    values = dict(meta)
    values["name"] = values["name"] or app.identifier
    values["description"] = values["description"] or ""
    values["meta_version"] = version
    if _set(app, values):
        app.updated_at = utcnow()


def _release_values(item: FoundRelease) -> dict[str, Any]:
    return {
        "source": item.source,
        "channel": item.channel,
        "current": item.current,
        "withdrawn": False,
        "git_ref": item.ref,
        "commit": item.commit,
        "file": item.file,
        "entrypoint": item.spec.entrypoint,
        "app_meta": _app_meta(item.spec.app),
    }


class _NewRelease:
    """A release not yet in the catalogue; several Arkitekt entries may add flavours."""

    def __init__(self, app_id: int, item: FoundRelease) -> None:
        now = utcnow()
        self.values = {
            **_release_values(item),
            "app_id": app_id,
            "version": item.spec.version,
            "created_at": now,
            "updated_at": now,
        }
        self.flavours: dict[str, dict[str, Any]] = {}
        self.merge(item)

    def merge(self, item: FoundRelease) -> None:
        for spec in item.spec.flavours:
            if spec.name not in self.flavours:
                self.flavours[spec.name] = _flavour_row(len(self.flavours), spec)


class Ingest:
    """One ingest of one IndexResult for one Repo, inside the caller's transaction."""

    def __init__(self, session: AsyncSession, repo: Repo, result: IndexResult) -> None:
        self.session = session
        self.repo = repo
        self.result = result
        self.changes = Changes(errors=list(result.errors))
        self.touched_apps: dict[int, App] = {}
        self.meta_from_channels: dict[int, App] = {}  # apps a channel's build describes
        self.built: set[str] = set()  # channels whose new build the catalogue took

    async def run(self) -> Changes:
        if not self.result.unchanged:
            await self._upsert_releases(self.result.releases)
            self._keep_refused_channels()
            await self._withdraw_retired_tags()
            if self.result.arkitekt_head is not None:
                await self._mark_arkitekt_current(self.result.arkitekt_head)
            await self._settle_channels()
            await self._refresh_app_meta()
            await self._store_logos()
            # Compare first: an unchanged JSON column must not become an UPDATE.
            _set(
                self.repo,
                {
                    "refs": self.result.refs,
                    "head": self.result.head,
                    "indexed_branch": self.result.branch,
                },
            )
        return self.changes

    async def _store_logos(self) -> None:
        """The logos read this run, for this repository's own apps, unless an app's
        newest release (whose manifest its fields mirror) is newer than the one that
        named the logo, or names none: then its stored logo goes. Unchanged: no write."""
        await self.session.flush()  # apps new this run get their ids
        apps = [a for a in self.touched_apps.values() if a.id is not None]
        if not apps:
            return
        kept = {
            logo.app_id: logo
            for logo in await self.session.scalars(
                select(AppLogo).where(AppLogo.app_id.in_([a.id for a in apps]))
            )
        }
        for app in apps:
            logo = kept.get(app.id)
            read = self.result.logos.get(app.identifier)
            if app.logo is None:
                if logo is not None:
                    await self.session.delete(logo)
                continue
            if read is None or (app.meta_version and _newer(app.meta_version, read.version)):
                continue  # nothing read, or read from an older release (a backport tag)
            values = {"content_type": read.content_type, "data": read.data, "digest": read.digest}
            if logo is None:
                self.session.add(AppLogo(app_id=app.id, **values))
            elif logo.digest != read.digest:
                _set(logo, values)
                logo.updated_at = utcnow()

    async def _apps_by_identifier(self, identifiers: Iterable[str]) -> dict[str, App]:
        rows = await self.session.scalars(select(App).where(App.identifier.in_(set(identifiers))))
        return {app.identifier: app for app in rows}

    async def _upsert_releases(self, found: list[FoundRelease]) -> None:
        if not found:
            return
        apps = await self._apps_by_identifier(f.spec.app.identifier for f in found)
        owners: dict[int, str] = {}  # repo id -> URL fit to show (credentials hidden)
        foreign = {a.repo_id for a in apps.values() if a.repo_id != self.repo.id}
        if foreign:
            owner_rows = await self.session.execute(
                select(Repo.id, Repo.url).where(Repo.id.in_(foreign))
            )
            owners = {rid: redact(url) for rid, url in owner_rows.all()}

        accepted: list[tuple[App, FoundRelease]] = []
        created: list[App] = []
        for item in found:
            spec = item.spec
            app = apps.get(spec.app.identifier)
            if app is None:
                app = App(identifier=spec.app.identifier, repo_id=self.repo.id, name="")
                self.session.add(app)
                apps[spec.app.identifier] = app
                created.append(app)
            elif app.repo_id != self.repo.id:
                self.changes.errors.append(
                    ManifestError(
                        file=item.file,
                        ref=item.ref,
                        message=(
                            f"app '{spec.app.identifier}' belongs to repository "
                            f"{owners.get(app.repo_id, app.repo_id)}, which declared it first; "
                            "choose another identifier"
                        ),
                        path="app.identifier",
                    )
                )
                continue
            accepted.append((app, item))
        await self.session.flush()  # new apps get their ids

        # An app created this run has no releases yet: only the others' are looked up.
        fresh = {app.id for app in created}
        keys = [(app.id, item.spec.version) for app, item in accepted if app.id not in fresh]
        existing: dict[tuple[int, str], Release] = {}
        for chunk in _chunks(keys, 400):
            found_rows = await self.session.scalars(
                select(Release)
                .where(tuple_(Release.app_id, Release.version).in_(chunk))
                .options(selectinload(Release.flavours))
            )
            existing.update({(r.app_id, r.version): r for r in found_rows})

        pending: dict[tuple[int, str], _NewRelease] = {}
        newest: dict[int, tuple[str, dict[str, Any]]] = {}  # app id -> its newest release
        for app, item in accepted:
            key = (app.id, item.spec.version)
            release = existing.get(key)
            if not self._takes(item, release, pending.get(key)):
                continue
            if release is not None:
                self._update_release(app, release, item)
                meta, withdrawn = release.app_meta, release.withdrawn
            elif key in pending:
                pending[key].merge(item)
                meta, withdrawn = pending[key].values["app_meta"], False
            else:
                pending[key] = _NewRelease(app.id, item)
                self.changes.added.append(ReleaseRef(app.identifier, item.spec.version))
                meta, withdrawn = pending[key].values["app_meta"], False
            if not withdrawn and item.channel is None:  # a channel's build: _refresh_app_meta
                best = newest.get(app.id)
                if best is None or _newer(item.spec.version, best[0]):
                    newest[app.id] = (item.spec.version, meta)
            self.touched_apps[app.id] = app
        for app_id, (version, meta) in newest.items():
            app = self.touched_apps[app_id]
            # Equal counts: a moved tag may carry a new description for the same version.
            if app.meta_version is None or not _newer(app.meta_version, version):
                _apply_meta(app, version, meta)
        await self._insert(list(pending.values()))

    def _takes(self, item: FoundRelease, release: Release | None, new: _NewRelease | None) -> bool:
        """Does ``item`` go in? Not when its version is held by a release of another
        kind (a channel's build, or a release proper): one version is one thing. Then
        its ref is forgotten, so it is read again until that is resolved."""
        held = item.channel
        if new is not None:
            held = new.values["channel"]
        elif release is not None:
            held = release.channel
            if held is not None and release.withdrawn and item.channel is None:
                held = None  # a gone channel's build yields its version to a release
        if held == item.channel:
            if item.channel is not None:
                self.built.add(item.channel)
            return True
        self.result.refs.pop(TAGS + item.ref, None)
        spec = item.spec
        what = f"a build of channel {held!r}" if held else "a release"
        self.changes.errors.append(
            ManifestError(
                file=item.file,
                ref=item.ref,
                path="manifest.version",
                message=f"{spec.app.identifier} {spec.version} is {what} already; not indexed",
            )
        )
        return False

    async def _insert(self, new: list[_NewRelease]) -> None:
        """New releases and their flavours in two multi-row INSERTs (the first index of a
        repository with a thousand tags is a thousand releases)."""
        if not new:
            return
        # Plain executemany, then read the ids back: RETURNING with many rows makes
        # SQLAlchemy fall back to one statement per row on SQLite.
        await self.session.execute(insert(RELEASES), [n.values for n in new])
        keys = [(n.values["app_id"], n.values["version"]) for n in new]
        ids: dict[tuple[int, str], int] = {}
        for chunk in _chunks(keys, 400):
            rows = await self.session.execute(
                select(Release.app_id, Release.version, Release.id).where(
                    tuple_(Release.app_id, Release.version).in_(chunk)
                )
            )
            ids.update({(app_id, version): rid for app_id, version, rid in rows.all()})
        flavours = [
            {**row, "release_id": ids[key]}
            for n, key in zip(new, keys, strict=True)
            for row in n.flavours.values()
        ]
        if flavours:
            await self.session.execute(insert(FLAVOURS), flavours)

    def _update_release(self, app: App, release: Release, item: FoundRelease) -> None:
        if release.source in WHOLE_RELEASES and item.source == "arkitekt":
            return  # a release cut from a port.yaml tag is complete; Arkitekt adds nothing
        values = _release_values(item)
        if item.source == "arkitekt":
            # Entries accumulate across commits: keep the newest location, never forget
            # flavours an older entry declared, and let head-ness be decided separately.
            del values["current"]
        what = _set(release, values)
        what += self._merge_flavours(release, item, replace=item.source in WHOLE_RELEASES)
        if what:
            release.updated_at = utcnow()
            ref = ReleaseRef(app.identifier, release.version)
            self.changes.changed.append(Change(ref, ", ".join(what)))

    def _merge_flavours(self, release: Release, item: FoundRelease, *, replace: bool) -> list[str]:
        what: list[str] = []
        by_name = {f.name: f for f in release.flavours}
        wanted = {f.name for f in item.spec.flavours}
        offset = 0 if replace else len(release.flavours)
        for position, spec in enumerate(item.spec.flavours):
            row = _flavour_row(position, spec)
            flavour = by_name.get(spec.name)
            if flavour is None:
                row["position"] = position + offset
                release.flavours.append(Flavour(**row))
                what.append(f"flavours.{spec.name} added")
                continue
            if not replace:
                row["position"] = flavour.position
            what += [f"flavours.{spec.name}.{k}" for k in _set(flavour, row)]
        if replace:
            for flavour in list(release.flavours):
                if flavour.name not in wanted:
                    release.flavours.remove(flavour)
                    what.append(f"flavours.{flavour.name} removed")
        return what

    async def _withdraw_retired_tags(self) -> None:
        """Withdraw what vanished tags released, and what moved tags no longer release.

        Vanished tags come from comparing the refs of the last good run with this run's,
        not from scanning every release, so a rescan costs the same whatever the number
        of old tags.
        """
        prefix = self.repo.tag_prefix
        before = {
            name[len(TAGS) :].removesuffix("^{}")
            for name in (self.repo.refs or {})
            if name.startswith(TAGS)
        }
        vanished = {t for t in before if parse_tag(t, prefix) and t not in self.result.tags}
        retired = vanished | self.result.tags_read
        if not retired:
            return
        produced = {
            (f.spec.app.identifier, f.spec.version)
            for f in self.result.releases
            if f.source in WHOLE_RELEASES
        }
        # Plain columns first: on a first index every release read is "retired" (its
        # tag was read) and produced again; only what this run withdraws is loaded.
        candidates = await self.session.execute(
            select(Release.id, App.identifier, Release.version)
            .join(App)
            .where(
                App.repo_id == self.repo.id,
                Release.source.in_(WHOLE_RELEASES),
                Release.withdrawn.is_(False),
                Release.git_ref.in_(retired),
            )
        )
        doomed = [rid for rid, app, version in candidates.all() if (app, version) not in produced]
        if not doomed:
            return
        rows = await self.session.execute(
            select(Release, App).join(App).where(Release.id.in_(doomed)).order_by(Release.id)
        )
        for release, app in rows.all():
            release.withdrawn = True
            release.current = False
            release.updated_at = utcnow()
            self.changes.withdrawn.append(ReleaseRef(app.identifier, release.version))
            if app.meta_version == release.version:
                app.meta_version = None  # recomputed from what is left
            self.touched_apps[app.id] = app

    async def _mark_arkitekt_current(self, head: frozenset[tuple[str, str]]) -> None:
        rows = await self.session.execute(
            select(Release, App.identifier)
            .join(App)
            .where(App.repo_id == self.repo.id, Release.source == "arkitekt")
        )
        for release, identifier in rows.all():
            if _set(release, {"current": (identifier, release.version) in head}):
                release.updated_at = utcnow()
                where = "back at the branch head" if release.current else "only in history now"
                self.changes.changed.append(Change(ReleaseRef(identifier, release.version), where))

    def _keep_refused_channels(self) -> None:
        """A channel whose new build the catalogue refused (a version held by a release,
        an app of another repository, images of a refused registry) keeps its last good
        build and its old ref: it is read again next run, as a broken descriptor is."""
        for channel, head in list(self.result.channels.items()):
            if head is None or channel in self.built:
                continue
            del self.result.channels[channel]
            ref = CHANNELS + channel
            before = (self.repo.refs or {}).get(ref)
            if before is None:
                self.result.refs.pop(ref, None)
            else:
                self.result.refs[ref] = before

    async def _settle_channels(self) -> None:
        """Each followed channel's builds: the one it points at is current, those before
        are not (kept, as history), all are withdrawn when its tag is gone or the Repo
        no longer follows it."""
        if not is_oci(self.repo.url):
            return  # only OCI repositories have channels (their refs may be reset)
        followed = set(self.repo.channels or ())
        rows = await self.session.execute(
            select(Release, App)
            .join(App)
            .where(
                App.repo_id == self.repo.id,
                Release.channel.is_not(None),
                Release.withdrawn.is_(False),
            )
        )
        for release, app in rows.all():
            if app.meta_version == release.version:
                self.meta_from_channels[app.id] = app  # a release proper describes it better
            ref = ReleaseRef(app.identifier, release.version)
            head = self.result.channels.get(release.channel or "", ())
            if release.channel not in followed or head is None:
                release.withdrawn = True
                release.current = False
                self.changes.withdrawn.append(ref)
            elif head == () or not _set(
                release, {"current": head == (app.identifier, release.version)}
            ):
                continue  # not read this run, or as it was
            else:
                where = "the channel's build" if release.current else "superseded"
                self.changes.changed.append(Change(ref, f"{release.channel}: {where}"))
            release.updated_at = utcnow()

    async def _refresh_app_meta(self) -> None:
        """Apps without metadata (theirs was withdrawn) or with a channel build's take it
        from the newest release left: a release proper, else the channels' builds, the
        ones they point at first."""
        stale = [a for a in self.touched_apps.values() if a.meta_version is None]
        stale += [a for a in self.meta_from_channels.values() if a not in stale]
        for app in stale:
            rows = await self.session.execute(
                select(Release.version, Release.app_meta, Release.channel, Release.current).where(
                    Release.app_id == app.id, Release.withdrawn.is_(False)
                )
            )
            candidates = list(rows.all())
            if candidates:
                # Releases proper first, by version; of the builds, the current first.
                best = max(
                    candidates,
                    key=lambda r: (r[2] is None, r[2] is None or r[3], semver.Version.parse(r[0])),
                )
                _apply_meta(app, best[0], best[1])


def _chunks(items: list[tuple[int, str]], size: int) -> Iterable[list[tuple[int, str]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def error_rows(errors: Iterable[ManifestError]) -> list[IndexRunError]:
    """The rows recording ``errors`` on a run."""
    return [
        IndexRunError(
            file=_clip(e.file),
            ref=_clip(e.ref) if e.ref is not None else None,
            line=e.line,
            column=e.column,
            path=_clip(e.path),
            message=e.message,
        )
        for e in errors
    ]


def _clip(text: str, limit: int = 1024) -> str:
    """Fit a column: a hostile manifest can make a field path (its keys) any length."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


async def ingest(session: AsyncSession, repo: Repo, result: IndexResult) -> Changes:
    """Apply ``result`` to ``repo``'s part of the catalogue; the caller commits."""
    return await Ingest(session, repo, result).run()


__all__ = ["Changes", "error_rows", "ingest"]
