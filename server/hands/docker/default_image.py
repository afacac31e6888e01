"""The server's default sandbox image, built when the first session that needs it finds it missing.

A fresh machine has no `managed-sessions-sandbox` image until `managed-sessions image build` runs. Rather than
failing every session until someone does, the agent loop asks for the build itself (after
`ImagePreparer` raised `ImageMissingError`), and this runs it: the same `build_default_image` the command
runs, in a worker thread, as a task of the server's task group. A session that asks while a build of the same
tag is going waits for that build, so one tag is built once however many sessions start together; a session
that stops waiting (interrupted) leaves the build running for the others. A failed build is not remembered:
the next request builds again, so fixing the cause and sending a message is enough.

Only the server's default image is built here; an environment that names another image is pulled or explained
as before (`images.py`). Phases are logged at INFO and the build tools' output at DEBUG.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import anyio
import anyio.abc

from server.core.errors import EngineUnreachableError, SandboxUnavailableError
from server.hands.docker.base_image import ImageBuildError, build_default_image
from server.hands.docker.engine import in_engine

__all__ = ["DefaultImageBuilds"]

logger = logging.getLogger(__name__)


@dataclass
class _Build:
    done: anyio.Event = field(default_factory=anyio.Event)
    error: SandboxUnavailableError | None = None


class DefaultImageBuilds:
    """Builds of the default image, at most one per tag at a time, awaited by everyone who asked for it."""

    def __init__(self, default_image: str, task_group: anyio.abc.TaskGroup, base: str | None = None) -> None:
        self._default_image = default_image
        self._task_group = task_group
        self._base = base  # None: the base `image build --source auto` would pick
        self._going: dict[str, _Build] = {}

    async def build(self, image: str) -> None:
        """Builds `image` (the default image) or waits for the build already going; raises
        `SandboxUnavailableError` (the build's own message, which says what failed) when it fails."""
        if image != self._default_image:
            raise SandboxUnavailableError(
                f"image {image!r} is not the server's default image {self._default_image!r}, so it is not built "
                "here; make it on the engine, or leave the environment's image unset"
            )
        build = self._going.get(image)
        if build is None:
            build = self._going[image] = _Build()
            self._task_group.start_soon(self._run, image, build, name=f"building {image}")
        else:
            logger.info("waiting for the build of %s that is already going", image)
        await build.done.wait()
        if build.error is not None:
            raise type(build.error)(str(build.error)) from build.error  # one exception object per waiter

    async def _run(self, image: str, build: _Build) -> None:
        logger.info("the sandbox image %s is missing; building it (this takes a few minutes)", image)
        try:
            await in_engine(build_default_image, image, base=self._base, output=_log_line)
        except (ImageBuildError, EngineUnreachableError) as exc:
            logger.warning("building %s failed: %s", image, exc)
            build.error = exc
        except Exception as exc:  # a task of the server's group: a bug here must not take the server down
            logger.exception("building %s failed unexpectedly", image)
            build.error = SandboxUnavailableError(f"building the sandbox image {image!r} failed unexpectedly ({exc})")
        finally:
            del self._going[image]
            build.done.set()


def _log_line(line: str) -> None:
    logger.debug("image build: %s", line)
