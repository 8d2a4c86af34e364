"""The domain's own types: what is signed, with what, and what a signature must satisfy.

Plain frozen data, no I/O, and no import from the rest of the package at load time (the annotation
rules are imported where a Target uses them), so every layer (CI providers, steps, adapters) can
use them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ENV_SCHEME",
    "KMS_SCHEMES",
    "LOCAL_KEY_NAME",
    "Annotation",
    "CertificateSigning",
    "IdentityPolicy",
    "IdentityToken",
    "ImageRef",
    "KeyPolicy",
    "KeyRef",
    "KeySigning",
    "KeylessSigning",
    "SigningMaterial",
    "Target",
    "VerificationPolicy",
]


@dataclass(frozen=True)
class Annotation:
    """One provenance annotation and the variable its value came from (for error messages)."""

    key: str
    value: str
    source: str


@dataclass(frozen=True)
class ImageRef:
    """One image at the registry, by digest: what is signed and verified, never a tag."""

    repository: str
    digest: str

    def __str__(self) -> str:
        return f"{self.repository}@{self.digest}"


@dataclass(frozen=True)
class Target:
    """The image a run works on: its repository, the tags it publishes, and the annotations
    each tag's signature carries (the CI's, then the user's; `tag` is added per signature)."""

    repository: str
    tags: tuple[str, ...]
    ci_annotations: tuple[Annotation, ...] = ()
    user_annotations: tuple[Annotation, ...] = ()

    def annotations_for(self, tag: str | None) -> dict[str, str]:
        """Encoded annotations for one signature (tag None: the ones common to every tag)."""
        # annotations.py imports this module for Annotation: its rules are imported on use.
        from provenance_tasks.annotations import merge_annotations

        merged = merge_annotations(self.ci_annotations, self.user_annotations, tag or "")
        if tag is None:
            merged.pop("tag", None)
        return merged

    def at(self, digest: str) -> ImageRef:
        return ImageRef(self.repository, digest)


@dataclass(frozen=True)
class IdentityToken:
    """A keyless signer's OIDC token: given (GitLab's `id_tokens:`, `SIGSTORE_ID_TOKEN`), or asked
    of the GitHub Actions runner before each attempt, since those tokens live five minutes."""

    value: str | None = field(default=None, repr=False)
    source: str = ""  # where it came from, for messages: a variable, or the runner's endpoint
    request_url: str | None = None  # ACTIONS_ID_TOKEN_REQUEST_URL
    request_token: str | None = field(default=None, repr=False)

    @property
    def from_endpoint(self) -> bool:
        return self.value is None and self.request_url is not None


#: The KMS schemes cosign signs with (`cosign sign --key SCHEME://...`).
KMS_SCHEMES = ("awskms://", "gcpkms://", "azurekms://", "hashivault://", "gitlab://", "k8s://")
ENV_SCHEME = "env://"

#: The private half of the key pair a laptop signs with, as `cosign generate-key-pair` names it.
LOCAL_KEY_NAME = "cosign.key"


@dataclass(frozen=True)
class KeyRef:
    """A key reference as cosign takes it after --key: a file, `env://VAR` (the PEM in a
    variable) or a KMS URI. `str()` gives it back unchanged.

    Parsing only reads the text: whether the file can be read, the variable is set or the scheme
    is one cosign knows is steps/keys.py's to check, with the run's folder and environment.
    """

    scheme: str  # "env://", one of KMS_SCHEMES, another "x://", or "" for a file
    location: str  # the path, the variable's name, or the rest of the URI

    @classmethod
    def parse(cls, text: str) -> KeyRef:
        head, sep, rest = text.partition("://")
        return cls(head + sep, rest) if sep else cls("", text)

    def __str__(self) -> str:
        return f"{self.scheme}{self.location}"

    @property
    def is_file(self) -> bool:
        return not self.scheme

    @property
    def is_env(self) -> bool:
        return self.scheme == ENV_SCHEME

    @property
    def is_kms(self) -> bool:
        return self.scheme in KMS_SCHEMES

    @property
    def env_variable(self) -> str | None:
        """The variable an env:// reference names."""
        return self.location if self.is_env else None

    @property
    def path(self) -> Path | None:
        """A file reference's path, as given (relative to the run's folder, or absolute)."""
        return Path(self.location) if self.is_file else None

    @property
    def is_pair_file(self) -> bool:
        """A file named as cosign names a pair's private half, PREFIX.key: its name says where
        the public half is."""
        return self.is_file and self.location.endswith(".key")

    @property
    def public_path(self) -> Path | None:
        """The public half beside a file key, as cosign writes a pair: PREFIX.key's is
        PREFIX.pub (another name gets .pub for its suffix). None for env:// and a URI."""
        if not self.is_file:
            return None
        if self.is_pair_file:
            return Path(self.location[: -len(".key")] + ".pub")
        return Path(self.location).with_suffix(".pub")

    def public_half(self) -> KeyRef | None:
        """Where the public half is read: a KMS key is its own (cosign asks the KMS), a file's
        is public_path. None for env://: only `cosign public-key` can print it (preflight)."""
        if self.is_kms:
            return self
        public = self.public_path
        return KeyRef("", str(public)) if public is not None else None


@dataclass(frozen=True)
class KeySigning:
    """A private key: a file, env://VAR or a KMS URI; its password comes from COSIGN_PASSWORD."""

    key: str

    @property
    def ref(self) -> KeyRef:
        return KeyRef.parse(self.key)


@dataclass(frozen=True)
class CertificateSigning:
    """Bring-your-own PKI: a key with its certificate and chain."""

    key: str
    certificate: Path
    chain: Path

    @property
    def ref(self) -> KeyRef:
        return KeyRef.parse(self.key)


@dataclass(frozen=True)
class KeylessSigning:
    """Fulcio + Rekor, with the job's OIDC token (handed to cosign as a file for each attempt)."""

    token: IdentityToken = field(default_factory=IdentityToken)


SigningMaterial = KeySigning | CertificateSigning | KeylessSigning


@dataclass(frozen=True)
class KeyPolicy:
    """The signature must verify against this public key (file, env:// or KMS URI).

    of_signing_key: the run signs with `public_key`'s private half and was given no public key
    (a key in env://, or no .pub beside the file): preflight writes the half that `cosign
    public-key` printed into the run's private folder, and verify reads that.
    """

    public_key: str
    of_signing_key: str | None = None

    @property
    def ref(self) -> KeyRef:
        return KeyRef.parse(self.public_key)

    def admits(self, subject: str | None) -> bool:
        """Whether a signature cosign verified against this key is this policy's: it is (a key
        signature names no signer)."""
        return True

    def describe(self) -> str:
        if self.of_signing_key:
            return f"the public key of the signing key {self.of_signing_key}"
        return f"public key {self.public_key}"


@dataclass(frozen=True)
class IdentityPolicy:
    """The signing certificate must name this identity and issuer, and chain to a trusted CA.

    chain: a CA of your own (bring-your-own PKI); without it, the CAs of the run's Sigstore
    instance (its trusted root, or the public instance's). chain_root: that chain made into a
    trusted root with the instance's logs, for cosign 3 (sigstore.chain_trusted_root).
    """

    identity: str
    issuer: str
    chain: Path | None = None
    chain_root: Path | None = None

    def admits(self, subject: str | None) -> bool:
        """Whether a signature cosign verified is this signer's: cosign matched the identity
        already, and a certificate subject that is there must be it (a payload without one is
        cosign's word alone)."""
        return subject is None or subject == self.identity

    def describe(self) -> str:
        return f"identity {self.identity} issued by {self.issuer}"


VerificationPolicy = KeyPolicy | IdentityPolicy
