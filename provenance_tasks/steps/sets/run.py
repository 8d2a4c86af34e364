"""Many images in one run: each image's pipeline (steps/pipeline.py) on a bounded pool of threads.

The run decides everything it can once, before any image starts: the set (`--only`, this job's
shard), every image's plan (bad input in one stops them all, nothing pushed), and the login. The
tools are shared where sharing saves work and can't mix images up: cosign's probe, the key's
check, the registry's answer and the login are made once (`Tools.once`), and a 429 pauses every
image's calls to that registry. Each image has its own log (named lines; whole sections in CI),
its own cancel, and its own part of the outputs. A failing image never hides the others' results:
the run goes on (unless `--fail-fast`), names every image that failed, and exits non-zero.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from provenance_tasks.errors import InputError, ProvenanceError, VerificationError
from provenance_tasks.logs import ImageRow
from provenance_tasks.settings import ONE_IMAGE_KEYS, for_image
from provenance_tasks.steps import login as login_step
from provenance_tasks.steps import pipeline, plan
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog
from provenance_tasks.steps.sets import entries as image_set
from provenance_tasks.steps.sets import outputs as image_outputs
from provenance_tasks.steps.sets.bake import SetBuild
from provenance_tasks.steps.sets.entries import ImageEntry, Shard
from provenance_tasks.steps.sets.log import ImageLog
from provenance_tasks.steps.sets.meeting import Meeting, MeetingCancelled
from provenance_tasks.steps.sets.outputs import ImageOutcome
from provenance_tasks.steps.sets.tools import ImageTools

#: Which exit code a run of many ends with when its images failed in different ways: a
#: signature that fails the policy first (it must never be missed), then bad input, then tools.
_EXIT_ORDER = (VerificationError.exit_code, InputError.exit_code, 4, 1)


class ImagesFailed(ProvenanceError):
    """Some images of a set failed; the others' results stand (the summary has each)."""

    def __init__(self, message: str, exit_code: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


def run_set(task: str, run: Run, tools: Tools, log: RunLog) -> list[ImageOutcome]:
    """`task` (build, sign, verify, attest, publish, build_sign_verify) on each image of the
    set; raises ImagesFailed when any failed, after the outputs and the summary's rows."""
    s = run.settings
    printing = threading.Lock()
    # Until the set is known (bad input in --only, the shard, an image's settings), the run's
    # own files: a failure there is added to the report too.
    set_run, shard = run, None
    outcomes: list[ImageOutcome] = []
    failure: dict[str, Any] | None = None
    bake: SetBuild | None = None
    try:
        set_run, shard, outcomes = _set_up(task, run, log, printing)
        plans = _prepare(task, set_run, outcomes, tools, log)
        if task in ("build", "build_sign_verify"):
            # Its log's name is no image's (they start with a lowercase letter).
            bake = SetBuild.start(
                tools,
                ImageLog(log, "Bake", printing),
                [(o.entry.name, o.run, plans[o.entry.name]) for o in outcomes],
            )
        _run_all(task, outcomes, tools, log, bake, jobs=s.jobs or os.cpu_count() or 1)
    except BaseException as exc:  # bad input for all, a cancelled job: in the report too
        ended = log.failure_of(exc)
        failure = {"message": ended.message, "exit_code": ended.exit_code, "hint": ended.hint}
        raise
    finally:
        if bake is not None:
            bake.stop()
        log.images = tuple(_row(o) for o in outcomes)
        try:
            image_outputs.write(set_run, log, task.replace("_", "-"), outcomes, shard, failure)
        except OSError as exc:
            log.warning(f"the report could not be written: {exc}")
    _raise_if_failed(outcomes)
    return outcomes


def _set_up(
    task: str, run: Run, log: RunLog, printing: threading.Lock
) -> tuple[Run, Shard | None, list[ImageOutcome]]:
    """The images of this job, said in the log, each with its run; a build removes the set's
    earlier outputs (after each image's were read), a verify what an earlier one verified."""
    s = run.settings
    entries, shard = chosen(run)
    said = f"shard {shard.index}/{shard.total} ({shard.source}): " if shard else ""
    log.info(
        f"{said}{len(entries)} image{'s' if len(entries) != 1 else ''}: "
        f"{', '.join(e.name for e in entries) or 'none'}"
    )
    if s.image:
        log.info(_base(s.image, entries))
    set_run = replace(
        run,
        settings=replace(
            s,
            report=image_outputs.suffixed(s.report, shard),
            dotenv=image_outputs.suffixed(s.dotenv, shard),
        ),
    )
    outcomes = [_outcome(set_run, entry, log, printing) for entry in entries]
    if task in ("build", "build_sign_verify"):
        image_outputs.invalidate(set_run)  # after each image's earlier outputs were read
    if task == "verify" and s.verified_dotenv and not s.dry_run:
        (run.cwd / s.verified_dotenv).unlink(missing_ok=True)  # a failed verify pins nothing
    return set_run, shard, outcomes


def chosen(run: Run) -> tuple[tuple[ImageEntry, ...], Shard | None]:
    """The images this job works on, said in the log's words: the set, --only, the shard."""
    s = run.settings
    found = image_set.load(s.images, s.images_file, run.cwd)
    if not found:
        if s.only:
            raise InputError(
                "--only names images, but provenance.images lists none",
                hint="declare provenance.images (or images_file)",
            )
        # --image-name alone: an image of another job's set, known by its outputs
        found = image_set.entries([{"name": s.image_name}], "--image-name")
    found = image_set.only(found, s.only)
    if s.image_name:
        found = image_set.only(found, [s.image_name], "--image-name")
    # GitLab's CI_NODE_* count a parallel: matrix too: a job that names its images is no shard.
    named = bool(s.only or s.image_name)
    shard = image_set.shard_of(
        s.shard, run.environ, gitlab=run.ci.provider == "gitlab" and not named
    )
    mine = image_set.share(found, shard)
    if shard is not None and not mine:
        raise InputError(
            f"shard {shard.index}/{shard.total} ({shard.source}) of {len(found)} image"
            f"{'s' if len(found) != 1 else ''} has none to work on",
            hint=f"run at most {len(found)} jobs (parallel: {len(found)}), or list more images",
        )
    return mine, shard


def _base(image: str, entries: tuple[ImageEntry, ...]) -> str:
    """provenance.image is the set's base, never one image's repository: said in one line."""
    own = [e.name for e in entries if e.overrides.get("image")]
    but = f" (but {', '.join(own)}: {'its' if len(own) == 1 else 'their'} own image)" if own else ""
    return f"provenance.image {image} is the set's base: images land at {image}/<name>{but}"


def _outcome(run: Run, entry: ImageEntry, parent: RunLog, printing: threading.Lock) -> ImageOutcome:
    overrides = dict(entry.overrides)
    for key in ONE_IMAGE_KEYS:  # given for the one image named (--only): the caller's word
        if key in run.settings.given:
            overrides.pop(key, None)
    if "image" not in overrides and run.settings.image:  # the run's repository is the base
        overrides["image"] = f"{run.settings.image}/{entry.name}"
    try:
        settings = for_image(run.settings, overrides)
    except InputError as exc:
        raise _named(entry.name, exc) from None
    image_run = run.for_image(entry.name, settings, None)
    before = image_outputs.earlier_of_image(image_run, entry.name, here_only=True)
    return ImageOutcome(
        entry, replace(image_run, before=before), ImageLog(parent, entry.name, printing)
    )


def _prepare(
    task: str, run: Run, outcomes: list[ImageOutcome], tools: Tools, log: RunLog
) -> dict[str, plan.Plan]:
    """Before any image starts, what is the run's: every image's plan (bad input in one is
    said once, with its name, and nothing is built, pushed or signed), then the login. The
    probes are each image's preflight, beside its build as for one image, made once for all
    (Tools.once): a probe that fails them all is said once (_raise_if_failed)."""
    plans = {}
    for o in outcomes:
        try:
            steps = pipeline.steps_of(task, o.run)
            plans[o.entry.name] = plan.resolve(o.run, tools, steps, image_outputs.IMAGE_OUTPUTS)
        except InputError as exc:
            raise _named(o.entry.name, exc) from None
    if login_step.credentials(run) is not None:
        tools.private_docker_config()  # before the threads: every image's tools see it
        login_step.login(run, tools, log)  # once, for every image
    return plans


def _named(name: str, error: InputError) -> InputError:
    return InputError(f"image {name}: {error.message}", hint=error.hint)


def _run_all(
    task: str,
    outcomes: list[ImageOutcome],
    tools: Tools,
    log: RunLog,
    bake: SetBuild | None,
    *,
    jobs: int,
) -> None:
    stop = threading.Event()  # --fail-fast, or a cancel: no image starts after it
    started: list[ImageTools] = []
    starting = threading.Lock()  # an image starts, or the run cancels them all: not both
    # `jobs` images at work at a time; those waiting at a cosign call give their slot up.
    meeting = Meeting(len(outcomes), jobs)

    def one(o: ImageOutcome) -> None:
        if stop.is_set():
            meeting.left()
            return
        with meeting.image():
            with starting:
                if stop.is_set():  # another image failed (or the run ended) meanwhile
                    return
                own = ImageTools(o.run, tools, meeting=meeting, bake=bake)
                started.append(own)
                o.started = True
            try:
                o.result = pipeline.run_step(task, o.run, own, o.log)
            except BaseException as exc:  # every image's end is its own, a cancel's too
                o.error = exc
                _unexpected(o, exc)
                if o.run.settings.fail_fast:
                    stop.set()
            finally:
                try:
                    _say_end(o)
                    o.log.flush()
                finally:
                    own.close()

    log.info(f"{min(jobs, len(outcomes))} at a time (provenance.jobs)")
    pool = ThreadPoolExecutor(max_workers=max(1, len(outcomes)), thread_name_prefix="image")
    try:
        for future in [pool.submit(one, o) for o in outcomes]:
            future.result()
    except BaseException:
        with starting:  # SIGTERM or ^C: end every image's tools now, then report what ran
            stop.set()
            tools.cancelled.set()  # the run's cosign too: a shared call is nobody's own
            for own in started:
                own.cancelled.set()
        meeting.cancel()
        raise
    finally:
        pool.shutdown(wait=True)


def _unexpected(o: ImageOutcome, error: BaseException) -> None:
    """A bug, not a failure we know: its traceback in the image's log (redacted there), since
    the summary can only name its type."""
    if not isinstance(error, ProvenanceError | SystemExit | KeyboardInterrupt | MeetingCancelled):
        import traceback

        o.log.warning("".join(traceback.format_exception(error)).rstrip())


def _say_end(o: ImageOutcome) -> None:
    """The image's last line, inside its own output: how it ended."""
    if o.error is None:
        o.log.info(f"done: {o.log.image}@{o.log.digest}" if o.log.digest else "done")
        return
    failure = o.log.failure_of(o.error)
    where = f" in step {failure.step}" if failure.step else ""
    o.log.warning(f"FAILED{where} (exit {failure.exit_code}): {failure.message}")


def _row(o: ImageOutcome) -> ImageRow:
    if not o.started:
        return ImageRow(o.entry.name, "not run")
    summary = o.log.summarize(o.error)
    return ImageRow(
        o.entry.name,
        summary.status,
        summary.image,
        summary.digest,
        summary.verified,
        summary.failure,
    )


def _raise_if_failed(outcomes: list[ImageOutcome]) -> None:
    failed = [o for o in outcomes if o.error is not None]
    skipped = [o.entry.name for o in outcomes if not o.started]
    if not failed:
        return
    shared = {id(o.error) for o in failed}
    if (
        len(shared) == 1
        and len(failed) == len(outcomes)
        and isinstance(failed[0].error, InputError)
    ):
        # One probe of the run (Tools.once: a wrong key password, no cosign) failed every
        # image: it is the run's bad input, said once. Nothing was pushed or signed.
        raise failed[0].error
    codes = {o.log.failure_of(o.error).exit_code for o in failed if o.error is not None}
    code = next((c for c in _EXIT_ORDER if c in codes), max(codes))
    names = ", ".join(o.entry.name for o in failed)
    message = f"{len(failed)} of {len(outcomes)} images failed: {names}"
    if skipped:
        message += f"; not started (--fail-fast): {', '.join(skipped)}"
    raise ImagesFailed(message, code, hint="each image's reason is in the summary above")
