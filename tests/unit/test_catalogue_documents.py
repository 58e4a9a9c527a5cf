"""The JSON documents of `port apps --json`, built from catalogue rows without a database."""

from __future__ import annotations

from port.catalogue.models import App, Flavour, Release, Repo
from port.catalogue.queries import app_document


def test_app_document_orders_releases_by_semver_and_hides_credentials() -> None:
    repo = Repo(url="https://oauth2:glpat-secret@gitlab.example/acme/apps.git?token=x")
    releases = [
        Release(
            version=v,
            current=True,
            withdrawn=False,
            source="port",
            git_ref=f"v{v}",
            commit="c" * 40,
            flavours=[Flavour(name="cpu", image=f"img:{v}", selectors=[])],
        )
        for v in ("1.2.0", "1.10.0", "1.10.0-rc.1")
    ]
    app = App(identifier="sd", name="Sd", description="", repo=repo, releases=releases)
    document = app_document(app)
    assert document["repo"] == "https://***@gitlab.example/acme/apps.git?***"
    assert [r["version"] for r in document["releases"]] == ["1.10.0", "1.10.0-rc.1", "1.2.0"]
