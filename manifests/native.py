"""Port's own manifest: ``port.yaml`` with ``apiVersion: port/v1``.

One file describes one release of one app; the semver tag it is read at gives the
version. The models are strict (unknown keys are errors) because the file is written by
hand, and a typo that silently drops a selector or a resource limit would deploy the
wrong thing. The JSON Schema (:mod:`manifests.schema`) is generated from these models.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from manifests.bounds import MAX_BYTES
from manifests.diagnostics import validation_errors
from manifests.errors import ManifestError
from manifests.fields import (
    FLAVOUR_NAME,
    IDENTIFIER,
    MAX_ENV,
    MAX_FLAVOURS,
    MAX_PORTS,
    check_env_name,
    check_flavour_name,
    check_http_url,
    check_identifier,
    check_image,
    check_logo,
    check_path,
    check_shown_line,
    check_shown_text,
    check_text,
    parse_memory,
)
from manifests.selectors import Selector
from manifests.specs import (
    AppSpec,
    EnvVar,
    FlavourSpec,
    Parsed,
    ReleaseSpec,
    Requirement,
    Resources,
    Run,
    Sandbox,
    ServedPort,
)
from manifests.versions import normalise_version
from manifests.yamlload import LoadedYaml, YamlLoadError, load_yaml

API_VERSION = "port/v1"

Identifier = Annotated[
    str,
    AfterValidator(check_identifier),
    WithJsonSchema({"type": "string", "pattern": f"^{IDENTIFIER.pattern}$"}),
]
FlavourName = Annotated[
    str,
    AfterValidator(check_flavour_name),
    WithJsonSchema({"type": "string", "pattern": f"^{FLAVOUR_NAME.pattern}$"}),
]
Image = Annotated[
    str,
    AfterValidator(check_image),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 512,
            "description": "Image reference: [registry[:port]/]name[:tag][@digest].",
        }
    ),
]
Logo = Annotated[str, AfterValidator(check_logo)]
HttpUrl = Annotated[str, AfterValidator(check_http_url), Field(max_length=2000)]
Version = Annotated[
    str,
    BeforeValidator(normalise_version),
    WithJsonSchema({"type": "string", "description": "Semver, e.g. 1.2.3 or v1.3.0-rc.1."}),
]
Memory = Annotated[
    int,
    BeforeValidator(parse_memory),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "integer", "minimum": 1, "description": "Bytes."},
                {
                    "type": "string",
                    "pattern": r"^[0-9]+(\.[0-9]+)?\s*[bkmgtBKMGT]?([iI]?[bB])?$",
                    "description": "A size such as 512m or 8g (binary units).",
                },
            ]
        }
    ),
]
Word = Annotated[str, Field(min_length=1, max_length=100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RequirementModel(_Strict):
    """A platform service the app needs (Arkitekt's requirements)."""

    key: Word
    service: Annotated[str, Field(min_length=1, max_length=200)]
    optional: bool = False
    description: Annotated[str, Field(max_length=2000)] | None = None


class AppModel(_Strict):
    """What the release says about its app."""

    identifier: Identifier = Field(description="Stable forever: [a-z0-9][a-z0-9._-]{0,99}.")
    name: (
        Annotated[str, AfterValidator(check_shown_line), Field(min_length=1, max_length=200)] | None
    ) = Field(default=None, description="Display name; defaults to the identifier.")
    description: Annotated[str, AfterValidator(check_shown_text), Field(max_length=10_000)] = ""
    logo: Logo | None = Field(default=None, description="A path in the repo or an https URL.")
    homepage: HttpUrl | None = None
    license: Word | None = Field(default=None, description="SPDX identifier, e.g. MIT.")
    author: Annotated[str, AfterValidator(check_shown_line), Field(max_length=200)] | None = None
    categories: list[Word] = Field(default_factory=list)
    scopes: list[Word] = Field(default_factory=list)
    requirements: list[RequirementModel] = Field(default_factory=list)


class ResourcesModel(_Strict):
    """Default resources of a flavour; admins cap them."""

    cpus: Annotated[float, Field(gt=0, le=1024)] | None = Field(
        default=None, description="CPUs, fractions allowed."
    )
    memory: Memory | None = Field(default=None, description="Bytes, or a size like 8g / 512m.")


class SandboxModel(_Strict):
    """What the image supports; Port runs it so by default."""

    read_only: bool = Field(
        default=False,
        description="Runs with a read-only root filesystem (writes only to /tmp).",
    )
    non_root: bool = Field(default=False, description="Runs as any unprivileged user.")


class PortModel(_Strict):
    """A port the app serves inside its container."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")] = Field(
        default="web", description="Unique among the flavour's ports."
    )
    port: Annotated[int, Field(ge=1, le=65535)]
    protocol: Literal["http", "tcp"] = Field(
        default="http",
        description="http: an address of its own behind Port's sign-in; tcp: a host "
        "port, where the admin allows publishing.",
    )
    path: Annotated[str, AfterValidator(check_path), Field(max_length=2000)] = Field(
        default="/", description="Where the app's start page is."
    )


class EnvVarModel(_Strict):
    """An environment variable the app reads."""

    name: Annotated[str, AfterValidator(check_env_name)] = Field(
        description="A shell name; PORT_* names are Port's own."
    )
    value: Annotated[str, AfterValidator(check_text), Field(max_length=10_000)] | None = Field(
        default=None, description="The default; a Setup's own value replaces it."
    )
    description: Annotated[str, Field(max_length=2000)] = ""
    required: bool = Field(default=False, description="Installing needs a value.")
    secret: bool = Field(default=False, description="A value never shown back.")


Argument = Annotated[str, AfterValidator(check_text), Field(max_length=10_000)]
Arguments = Annotated[list[Argument], Field(max_length=100)]


class RunFields(_Strict):
    """How the image is run; the manifest's top level sets defaults for every flavour."""

    ports: Annotated[list[PortModel], Field(max_length=MAX_PORTS)] | None = Field(
        default=None, description="The ports the app serves; the first http one is opened."
    )
    command: Arguments | None = Field(default=None, description="Replaces the image's entrypoint.")
    args: Arguments | None = Field(default=None, description="Replaces the image's command.")
    env: Annotated[list[EnvVarModel], Field(max_length=MAX_ENV)] | None = Field(
        default=None, description="Environment variables; a flavour's add to or replace these."
    )

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        for field, items in (("ports", self.ports or ()), ("env", self.env or ())):
            names = [item.name for item in items]
            twice = sorted({name for name in names if names.count(name) > 1})
            if twice:
                raise ValueError(f"{field}: {', '.join(twice)} named more than once")
        return self


class FlavourModel(RunFields):
    """One build of the release."""

    image: Image
    selectors: list[Selector] = Field(default_factory=list)
    resources: ResourcesModel = Field(default_factory=ResourcesModel)
    sandbox: SandboxModel = Field(default_factory=SandboxModel)


class PortManifest(RunFields):
    """A ``port.yaml`` file."""

    model_config = ConfigDict(
        title="Port manifest (port.yaml)", extra="forbid", frozen=True, populate_by_name=False
    )

    api_version: Literal["port/v1"] = Field(alias="apiVersion", title="apiVersion")
    app: AppModel
    version: Version | None = Field(
        default=None, description="Optional; must equal the version of the semver tag."
    )
    entrypoint: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    flavours: Annotated[
        dict[FlavourName, FlavourModel], Field(min_length=1, max_length=MAX_FLAVOURS)
    ] = Field(
        description="Flavour name -> build, in order of preference for ties.",
        json_schema_extra={"additionalProperties": False},
    )


def parse_port_manifest(
    data: bytes | str,
    *,
    file: str = "port.yaml",
    ref: str | None = None,
    tag_version: str | None = None,
    max_bytes: int = MAX_BYTES,
) -> Parsed:
    """Parse one ``port.yaml``; every problem becomes a located error, nothing raises.

    ``tag_version`` is the normalised version of the semver tag the file was read at. A
    ``version`` field must equal it. Without a tag (validating a lone file) the field is
    the version; with neither, the file is checked but yields no release.
    """
    try:
        loaded = load_yaml(data, file=file, ref=ref, max_bytes=max_bytes)
    except YamlLoadError as exc:
        return Parsed(errors=[exc.error])
    return parse_port_document(loaded, tag_version=tag_version)


def parse_port_document(loaded: LoadedYaml, *, tag_version: str | None = None) -> Parsed:
    """:func:`parse_port_manifest` for an already loaded document."""
    try:
        manifest = PortManifest.model_validate(loaded.data)
    except ValidationError as exc:
        errors = validation_errors(exc, loaded, root=PortManifest)
        return Parsed(errors=[_hint_api_version(error, loaded) for error in errors])
    if manifest.version is not None and tag_version not in (None, manifest.version):
        message = (
            f"version {manifest.version!r} does not match {tag_version!r}, the version "
            f"of the tag; remove the field or set it to {tag_version!r}"
        )
        return Parsed(errors=[loaded.error(("version",), message)])
    version = tag_version or manifest.version
    if version is None:
        return Parsed()
    return Parsed(releases=[to_release(manifest, version)])


def to_release(manifest: PortManifest, version: str) -> ReleaseSpec:
    """The :class:`ReleaseSpec` of a validated manifest."""
    app = manifest.app
    spec = AppSpec(
        identifier=app.identifier,
        name=app.name or app.identifier,
        description=app.description,
        logo=app.logo,
        homepage=app.homepage,
        license=app.license,
        author=app.author,
        categories=tuple(app.categories),
        scopes=tuple(app.scopes),
        requirements=tuple(
            Requirement(
                key=r.key, service=r.service, optional=r.optional, description=r.description
            )
            for r in app.requirements
        ),
    )
    flavours = tuple(
        FlavourSpec(
            name=name,
            image=flavour.image,
            selectors=tuple(flavour.selectors),
            resources=Resources(cpus=flavour.resources.cpus, memory=flavour.resources.memory),
            sandbox=Sandbox(read_only=flavour.sandbox.read_only, non_root=flavour.sandbox.non_root),
            run=_run(manifest, flavour),
        )
        for name, flavour in manifest.flavours.items()
    )
    return ReleaseSpec(app=spec, version=version, flavours=flavours, entrypoint=manifest.entrypoint)


def _run(defaults: RunFields, flavour: RunFields) -> Run:
    """A flavour's own ports, command and args replace the defaults; its env entries are
    added to them, replacing those of the same name."""
    ports = flavour.ports if flavour.ports is not None else defaults.ports or []
    command = flavour.command if flavour.command is not None else defaults.command
    args = flavour.args if flavour.args is not None else defaults.args
    env = {e.name: e for e in defaults.env or ()} | {e.name: e for e in flavour.env or ()}
    return Run(
        ports=tuple(
            ServedPort(name=p.name, port=p.port, protocol=p.protocol, path=p.path) for p in ports
        ),
        command=tuple(command) if command is not None else None,
        args=tuple(args) if args is not None else None,
        env=tuple(
            EnvVar(
                name=e.name,
                value=e.value,
                description=e.description,
                required=e.required,
                secret=e.secret,
            )
            for e in env.values()
        ),
    )


def _hint_api_version(error: ManifestError, loaded: LoadedYaml) -> ManifestError:
    """A file without ``apiVersion`` is probably not meant for Port: say what is expected."""
    if error.path == "apiVersion" and "apiVersion" not in loaded.data:
        return replace(error, message=f"missing 'apiVersion: {API_VERSION}' at the top level")
    return error
