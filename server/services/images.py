"""The sandbox base image: what `managed-sessions image build` asks of the sandbox backend."""

from __future__ import annotations

from server.core.config import ServerConfig
from server.hands.docker.base_image import ImageSource, build_default_image

__all__ = ["build_base_image"]


def build_base_image(config: ServerConfig, tag: str | None, source: ImageSource) -> None:
    """Builds the default sandbox image (Docker is today's only backend; another would build its own here).

    A server whose image is missing builds it the same way, for its first session (`hands/docker/default_image.py`).
    """
    build_default_image(tag or config.image, source)
