"""The cosign CLI: one class, one method per subcommand, argv lists, one run() that redacts.

cosign 2.x and 3.x take different flags for the same intent, and Debian's builds report
"GitVersion: devel" for every version, so the major is found once by probing a flag that only 3.x
has. Signatures are written in cosign's classic format unless asked otherwise: every 2.x and 3.x
verifier reads it (Alpine still ships 2.4).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from provenance_tasks.adapters.process import Completed, LineSink, last_lines, run
from provenance_tasks.annotations import cosign_annotation_arg
from provenance_tasks.errors import InputError
from provenance_tasks.redaction import Redactor

KMS_SCHEMES = ("awskms://", "gcpkms://", "azurekms://", "hashivault://", "gitlab://", "k8s://")
KEY_REF_SCHEMES = (*KMS_SCHEMES, "env://", "pkcs11:")


@dataclass(frozen=True)
class KeySigning:
    """A private key: a file, env://VAR or a KMS URI; its password comes from COSIGN_PASSWORD."""

    key: str


@dataclass(frozen=True)
class CertificateSigning:
    """Bring-your-own PKI: a key with its certificate and chain."""

    key: str
    certificate: Path
    chain: Path


@dataclass(frozen=True)
class KeylessSigning:
    """Fulcio + Rekor: cosign reads the OIDC token from SIGSTORE_ID_TOKEN (or GitHub's own)."""


SigningMaterial = KeySigning | CertificateSigning | KeylessSigning


@dataclass(frozen=True)
class KeyPolicy:
    """The signature must verify against this public key (file, env:// or KMS URI)."""

    public_key: str


@dataclass(frozen=True)
class IdentityPolicy:
    """The signing certificate must name this identity and issuer, and chain to a trusted root.

    chain: a private CA (bring-your-own PKI, test beds); trusted_root: a trusted_root.json for the
    new bundle format. Neither: Sigstore's public good instance.
    """

    identity: str
    issuer: str
    chain: Path | None = None
    trusted_root: Path | None = None


VerificationPolicy = KeyPolicy | IdentityPolicy


@dataclass(frozen=True)
class Cosign:
    binary: str
    major: int
    redactor: Redactor = field(repr=False)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float | None = None  # seconds per attempt, handed to cosign's own --timeout

    @classmethod
    def detect(
        cls,
        binary: str = "cosign",
        *,
        redactor: Redactor,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Cosign:
        """Find the binary and its major: `sign --help` lists --use-signing-config only in 3.x."""
        found = shutil.which(binary)
        if not found:
            raise InputError(
                f"cosign not found (looked for {binary!r} on PATH)",
                hint="install cosign 2.4+ or 3.0.3+ (ci/install-tools does it on Debian 12), "
                "or set provenance.cosign to its path",
            )
        environ = dict(os.environ if env is None else env)
        helped = run([found, "sign", "--help"], redactor=redactor, env=environ, check=False)
        if helped.returncode != 0 or "--key" not in helped.stdout + helped.stderr:
            raise InputError(
                f"{found} does not look like cosign: `cosign sign --help` failed",
                hint="install cosign 2.4+ or 3.0.3+",
            )
        major = 3 if "--use-signing-config" in helped.stdout + helped.stderr else 2
        # Debian's builds report "devel" as their version, so the flags tell the age instead:
        # 2.4 gave verify --new-bundle-format (3.x hides it, deprecated).
        if major == 2:
            verify = run([found, "verify", "--help"], redactor=redactor, env=environ, check=False)
            if "--new-bundle-format" not in verify.stdout + verify.stderr:
                raise InputError(
                    f"{found} is older than cosign 2.4 (its verify has no --new-bundle-format)",
                    hint="install cosign 2.4+ or 3.0.3+ (ci/install-tools does it on Debian 12)",
                )
        return cls(found, major, redactor, environ, timeout)

    def check_key(self, key: str) -> None:
        """Decrypt the signing key now (`cosign public-key`), so a wrong COSIGN_PASSWORD stops
        the run before anything is built or pushed rather than after."""
        done = run(
            [self.binary, "public-key", "--key", key],
            redactor=self.redactor,
            env={"COSIGN_PASSWORD": "", **self.env},
            check=False,
        )
        if done.returncode != 0:
            wrong_password = "decrypt" in done.stderr.lower()
            raise InputError(
                f"cannot use the signing key {key}: "
                + ("wrong password" if wrong_password else "".join(last_lines(done.stderr))),
                hint="set COSIGN_PASSWORD to the key's password"
                if wrong_password
                else "pass --key with a cosign private key",
            )

    def within(self, seconds: float) -> Cosign:
        """This cosign with its --timeout cut to `seconds` (what is left of a retry budget)."""
        timeout = min(self.timeout, seconds) if self.timeout else seconds
        return replace(self, timeout=max(1.0, timeout))

    # --- command lines -------------------------------------------------------------------------

    def sign_argv(
        self,
        image_ref: str,
        material: SigningMaterial,
        annotations: Mapping[str, str],
        *,
        tlog: bool = True,
        new_bundle_format: bool = False,
    ) -> list[str]:
        """`cosign sign` for one IMAGE@DIGEST; annotation values must already be encoded."""
        if "@" not in image_ref:
            raise ValueError(f"refusing to sign a tag, not a digest: {image_ref}")
        argv = [self.binary, "sign", "--yes"]
        if isinstance(material, KeySigning):
            argv += ["--key", material.key]
        elif isinstance(material, CertificateSigning):
            argv += [
                "--key",
                material.key,
                "--certificate",
                str(material.certificate),
                "--certificate-chain",
                str(material.chain),
            ]
        if self.major >= 3:
            if not tlog:
                # 3.x signs by its signing config, which names a transparency log: off for both.
                argv += ["--use-signing-config=false", "--tlog-upload=false"]
            argv += [f"--new-bundle-format={'true' if new_bundle_format else 'false'}"]
        elif not tlog:
            argv += ["--tlog-upload=false"]
        return argv + self._annotations_timeout_and(image_ref, annotations)

    def verify_argv(
        self,
        image_ref: str,
        policy: VerificationPolicy,
        annotations: Mapping[str, str] = {},
        *,
        tlog: bool = True,
        new_bundle_format: bool = False,
    ) -> list[str]:
        """`cosign verify`: a key, or an identity and issuer; never both (cosign ignores one)."""
        argv = [self.binary, "verify", "--output", "json"]
        if isinstance(policy, KeyPolicy):
            argv += ["--key", policy.public_key]
        else:
            argv += [
                "--certificate-identity",
                policy.identity,
                "--certificate-oidc-issuer",
                policy.issuer,
            ]
            if policy.trusted_root is not None and new_bundle_format:
                argv += ["--trusted-root", str(policy.trusted_root)]
            elif policy.chain is not None:
                argv += ["--certificate-chain", str(policy.chain)]
            if policy.chain is not None or policy.trusted_root is not None:
                # A private CA has no certificate transparency log to have embedded an SCT.
                argv += ["--insecure-ignore-sct"]
        if not tlog:
            argv += ["--insecure-ignore-tlog"]
        if self.major >= 3:
            argv += [f"--new-bundle-format={'true' if new_bundle_format else 'false'}"]
        return argv + self._annotations_timeout_and(image_ref, annotations)

    def _annotations_timeout_and(self, image_ref: str, annotations: Mapping[str, str]) -> list[str]:
        """The tail both subcommands share: -a per annotation, the timeout, the image last."""
        tail: list[str] = []
        for key, value in annotations.items():
            tail += ["-a", cosign_annotation_arg(key, value)]
        if self.timeout:
            tail += ["--timeout", f"{int(self.timeout)}s"]
        return [*tail, image_ref]

    # --- running ---------------------------------------------------------------------------------

    def sign(
        self,
        image_ref: str,
        material: SigningMaterial,
        annotations: Mapping[str, str],
        *,
        tlog: bool = True,
        new_bundle_format: bool = False,
        on_line: LineSink | None = None,
    ) -> Completed:
        argv = self.sign_argv(
            image_ref, material, annotations, tlog=tlog, new_bundle_format=new_bundle_format
        )
        return self._run(argv, on_line=on_line)

    def verify(
        self,
        image_ref: str,
        policy: VerificationPolicy,
        annotations: Mapping[str, str] = {},
        *,
        tlog: bool = True,
        new_bundle_format: bool = False,
        on_line: LineSink | None = None,
    ) -> tuple[Completed, list[dict[str, Any]]]:
        """Run cosign verify; returns the run and its parsed JSON payloads (one per signature)."""
        argv = self.verify_argv(
            image_ref, policy, annotations, tlog=tlog, new_bundle_format=new_bundle_format
        )
        completed = self._run(argv, on_line=on_line, stdout_is_data=True)
        return completed, parse_verify_output(completed.stdout)

    def generate_key_pair(self, folder: Path) -> tuple[Path, Path]:
        """A key pair with an empty password, files 0600, for local key-mode signing."""
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        env = {**self.env, "COSIGN_PASSWORD": ""}
        run(
            [self.binary, "generate-key-pair", "--output-key-prefix", str(folder / "cosign")],
            redactor=self.redactor,
            env=env,
        )
        key, pub = folder / "cosign.key", folder / "cosign.pub"
        key.chmod(0o600)
        pub.chmod(0o600)
        return key, pub

    def _run(
        self, argv: Sequence[str], *, on_line: LineSink | None, stdout_is_data: bool = False
    ) -> Completed:
        # Never prompt: no COSIGN_PASSWORD means an unencrypted key (as made for laptops); an
        # encrypted one then fails with a clear "decryption failed" instead of hanging.
        env = {"COSIGN_PASSWORD": "", **self.env, "COSIGN_YES": "true"}
        if stdout_is_data:
            # The JSON on stdout is parsed, not shown; only stderr streams to the log.
            def sink(stream: str, line: str) -> None:
                if stream == "stderr" and on_line is not None:
                    on_line(stream, line)

            return run(
                argv, redactor=self.redactor, env=env, on_line=sink, timeout=self._kill_after
            )
        return run(argv, redactor=self.redactor, env=env, on_line=on_line, timeout=self._kill_after)

    @property
    def _kill_after(self) -> float | None:
        # cosign's --timeout covers its registry calls; this covers a cosign that hangs anyway.
        return self.timeout + 30 if self.timeout else None


def parse_verify_output(stdout: str) -> list[dict[str, Any]]:
    """cosign verify prints one JSON array of payloads (some versions print one object per line)."""
    payloads: list[dict[str, Any]] = []
    decoder = json.JSONDecoder()
    text = stdout.strip()
    index = 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        try:
            value, index = decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            # A line of prose between documents: skip to the next line.
            newline = text.find("\n", index)
            index = len(text) if newline < 0 else newline + 1
            continue
        if isinstance(value, list):
            payloads.extend(item for item in value if isinstance(item, dict))
        elif isinstance(value, dict):
            payloads.append(value)
    return payloads
