"""The cosign CLI: one class, one method per subcommand, argv lists, one run() that redacts.

cosign 2.x and 3.x take different flags for the same intent, and Debian's builds report
"GitVersion: devel" for every version, so the major is found once by probing a flag that only 3.x
has. Signatures are written in cosign's classic format unless asked otherwise: every 2.x and 3.x
verifier reads it (Alpine still ships 2.4).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from provenance_tasks.adapters.cosign_flags import KEPT_DEPRECATED, sign_flags, verify_flags
from provenance_tasks.adapters.process import Completed, LineSink, run
from provenance_tasks.annotations import cosign_annotation_arg
from provenance_tasks.errors import InputError, last_lines
from provenance_tasks.models import (
    LOCAL_KEY_NAME,
    CertificateSigning,
    IdentityPolicy,
    KeylessSigning,
    KeyPolicy,
    KeySigning,
    SigningMaterial,
    VerificationPolicy,
)
from provenance_tasks.redaction import Redactor
from provenance_tasks.sigstore import SigstoreInstance


@dataclass(frozen=True)
class Cosign:
    binary: str
    major: int
    redactor: Redactor = field(repr=False)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)  # all cosign sees
    timeout: float | None = None  # seconds per attempt, handed to cosign's own --timeout
    sigstore: SigstoreInstance = field(default_factory=SigstoreInstance)
    # Set when the run gives up (SIGTERM): a cosign still running is ended at once.
    cancel: threading.Event | None = field(default=None, compare=False, repr=False)

    @classmethod
    def detect(
        cls,
        binary: str = "cosign",
        *,
        redactor: Redactor,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        sigstore: SigstoreInstance | None = None,
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
        # The probes run beside the build: they yield the CPU to it (process.YIELDING_NICE).
        helped = run(
            [found, "sign", "--help"], redactor=redactor, env=environ, check=False, yielding=True
        )
        if helped.returncode != 0 or "--key" not in helped.stdout + helped.stderr:
            raise InputError(
                f"{found} does not look like cosign: `cosign sign --help` failed",
                hint="install cosign 2.4+ or 3.0.3+",
            )
        major = 3 if "--use-signing-config" in helped.stdout + helped.stderr else 2
        # Debian's builds report "devel" as their version, so the flags tell the age instead:
        # 2.4 gave verify --new-bundle-format (3.x hides it, deprecated).
        if major == 2:
            verify = run(
                [found, "verify", "--help"],
                redactor=redactor,
                env=environ,
                check=False,
                yielding=True,
            )
            if "--new-bundle-format" not in verify.stdout + verify.stderr:
                raise InputError(
                    f"{found} is older than cosign 2.4 (its verify has no --new-bundle-format)",
                    hint="install cosign 2.4+ or 3.0.3+ (ci/install-tools does it on Debian 12)",
                )
        return cls(found, major, redactor, environ, timeout, sigstore or SigstoreInstance())

    def check_key(self, key: str) -> str:
        """Decrypt the signing key now (`cosign public-key`), so a wrong COSIGN_PASSWORD stops
        the run before anything is built or pushed rather than after. Returns its public half
        (PEM), which verify can use where no public key was given."""
        done = run(
            [self.binary, "public-key", "--key", key],
            redactor=self.redactor,
            env={"COSIGN_PASSWORD": "", **self.env},
            check=False,
            timeout=60,
            yielding=True,  # beside the build, which the run waits on; needed only at the push
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
        return done.stdout

    def within(self, seconds: float) -> Cosign:
        """This cosign with its --timeout cut to `seconds` (what is left of a retry budget)."""
        timeout = min(self.timeout, seconds) if self.timeout else seconds
        return replace(self, timeout=max(1.0, timeout))

    # --- command lines -------------------------------------------------------------------------

    def sign_argv(
        self,
        image_ref: str | Sequence[str],
        material: SigningMaterial,
        annotations: Mapping[str, str],
        *,
        tlog: bool = True,
        new_bundle_format: bool = False,
        identity_token: Path | None = None,
        signing_config: Path | None = None,
        trusted_root: Path | None = None,
    ) -> list[str]:
        """`cosign sign` of IMAGE@DIGEST (or several, in one call: each gets its own signature
        with the same annotations); annotation values must already be encoded. `signing_config`:
        what cosign 3 writes a new bundle by (cosign_flags.sign_flags); `trusted_root`: cosign 3's
        when it isn't the instance's (a certificate's own chain, which it checks the leaf by)."""
        refs = [image_ref] if isinstance(image_ref, str) else list(image_ref)
        for ref in refs:
            if "@" not in ref:
                raise ValueError(f"refusing to sign a tag, not a digest: {ref}")
        argv = [self.binary, "sign", "--yes", *material_flags(material)]
        argv += sign_flags(
            self.major,
            self.sigstore,
            keyless=isinstance(material, KeylessSigning),
            tlog=tlog,
            new_bundle_format=new_bundle_format,
            identity_token=identity_token,
            signing_config=signing_config,
            trusted_root=trusted_root,
        )
        return argv + self._annotations_timeout_and(refs, annotations)

    def verify_argv(
        self,
        image_ref: str | Sequence[str],
        policy: VerificationPolicy,
        annotations: Mapping[str, str] = {},
        *,
        tlog: bool = True,
        new_bundle_format: bool = False,
    ) -> list[str]:
        """`cosign verify` of IMAGE@DIGEST (or several, in one call): a key, or an identity and
        issuer; never both (cosign ignores one)."""
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
        argv += verify_flags(
            self.major,
            self.sigstore,
            certificate=isinstance(policy, IdentityPolicy),
            chain=policy.chain if isinstance(policy, IdentityPolicy) else None,
            chain_root=policy.chain_root if isinstance(policy, IdentityPolicy) else None,
            tlog=tlog,
            new_bundle_format=new_bundle_format,
        )
        refs = [image_ref] if isinstance(image_ref, str) else list(image_ref)
        return argv + self._annotations_timeout_and(refs, annotations)

    def _annotations_timeout_and(
        self, image_refs: Sequence[str], annotations: Mapping[str, str]
    ) -> list[str]:
        """The tail both subcommands share: -a per annotation, the timeout, the images last."""
        tail: list[str] = []
        for key, value in annotations.items():
            tail += ["-a", cosign_annotation_arg(key, value)]
        if self.timeout:
            tail += ["--timeout", f"{int(self.timeout)}s"]
        return [*tail, *image_refs]

    # --- running ---------------------------------------------------------------------------------

    def sign(
        self,
        image_ref: str | Sequence[str],
        material: SigningMaterial,
        annotations: Mapping[str, str],
        *,
        tlog: bool = True,
        new_bundle_format: bool = False,
        identity_token: Path | None = None,
        signing_config: Path | None = None,
        trusted_root: Path | None = None,
        on_line: LineSink | None = None,
    ) -> Completed:
        argv = self.sign_argv(
            image_ref,
            material,
            annotations,
            tlog=tlog,
            new_bundle_format=new_bundle_format,
            identity_token=identity_token,
            signing_config=signing_config,
            trusted_root=trusted_root,
        )
        return self._run(argv, on_line=on_line)

    def verify(
        self,
        image_ref: str | Sequence[str],
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

    def attest(self, argv: Sequence[str], *, on_line: LineSink | None = None) -> Completed:
        """Run a `cosign attest` line (adapters/cosign_attest.py builds it)."""
        return self._run(argv, on_line=on_line)

    def verify_attestation(
        self, argv: Sequence[str], *, on_line: LineSink | None = None
    ) -> list[dict[str, Any]]:
        """Run a `cosign verify-attestation` line; its DSSE envelopes, one per attestation."""
        completed = self._run(argv, on_line=on_line, stdout_is_data=True)
        return parse_verify_output(completed.stdout)

    def generate_key_pair(self, folder: Path) -> tuple[Path, Path]:
        """A key pair with an empty password, files 0600, for local key-mode signing."""
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        env = {**self.env, "COSIGN_PASSWORD": ""}
        key = folder / LOCAL_KEY_NAME
        prefix = key.with_suffix("")  # cosign writes PREFIX.key and PREFIX.pub
        run(
            [self.binary, "generate-key-pair", "--output-key-prefix", str(prefix)],
            redactor=self.redactor,
            env=env,
        )
        pub = prefix.with_suffix(".pub")
        key.chmod(0o600)
        pub.chmod(0o600)
        return key, pub

    def _run(
        self, argv: Sequence[str], *, on_line: LineSink | None, stdout_is_data: bool = False
    ) -> Completed:
        # Never prompt: no COSIGN_PASSWORD means an unencrypted key (as made for laptops); an
        # encrypted one then fails with a clear "decryption failed" instead of hanging.
        env = {"COSIGN_PASSWORD": "", **self.env, "COSIGN_YES": "true"}  # see cosign_env.py
        sink = None
        if on_line is not None:
            shown = on_line

            def sink(stream: str, line: str) -> None:
                # The JSON on stdout is parsed, not shown; only stderr streams to the log. The
                # warnings of the deprecated flags we keep on purpose are said once by the run.
                if (stdout_is_data and stream != "stderr") or _kept_warning(line):
                    return
                shown(stream, line)

        return run(
            argv,
            redactor=self.redactor,
            env=env,
            on_line=sink,
            timeout=self._kill_after,
            cancel=self.cancel,
        )

    @property
    def _kill_after(self) -> float | None:
        # cosign's --timeout covers its registry calls; this covers a cosign that hangs anyway.
        return self.timeout + 30 if self.timeout else None


_DEPRECATION = re.compile(r"Flag (--[\w-]+) has been deprecated")
_KEPT = frozenset(kept.flag for kept in KEPT_DEPRECATED)


def _kept_warning(line: str) -> bool:
    """cosign 3's warning for a flag on KEPT_DEPRECATED; any other deprecation still shows."""
    found = _DEPRECATION.search(line)
    return found is not None and found.group(1) in _KEPT


def material_flags(material: SigningMaterial) -> list[str]:
    """What signs: a key, or a key with its certificate and chain (keyless: the token, later)."""
    if isinstance(material, KeySigning):
        return ["--key", material.key]
    if isinstance(material, CertificateSigning):
        return [
            "--key",
            material.key,
            "--certificate",
            str(material.certificate),
            "--certificate-chain",
            str(material.chain),
        ]
    return []


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
