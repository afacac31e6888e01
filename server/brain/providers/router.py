"""One `ModelClient` over every provider: a turn goes to the provider its model id names.

`anthropic/<model>` and bare ids go to the Anthropic client; `openai/<model>` and `<endpoint>/<model>` to an
OpenAI-compatible client for that endpoint, made on first use and kept (its HTTP connections are reused).
Each provider is given the bare model name. A model id no provider serves (an endpoint removed from the
providers file after a session was created) ends the turn with a `configuration_error` that says what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from pydantic import JsonValue

from server.brain.model import ModelClient, ModelError, ModelTurn, TurnPreview
from server.core.errors import InvalidRequestError
from server.core.models import ANTHROPIC, Endpoint, Providers, split_model_id

__all__ = ["ClosableModel", "ModelRouter"]


class ClosableModel(ModelClient, Protocol):
    """A provider's client: it holds HTTP connections, closed with the server."""

    async def aclose(self) -> None: ...


class ModelRouter:
    """Routes each turn by its model id's prefix."""

    def __init__(
        self,
        providers: Providers,
        anthropic: ClosableModel,
        openai_compatible: Callable[[Endpoint], ClosableModel],
    ) -> None:
        self._providers = providers
        self._anthropic = anthropic
        self._make = openai_compatible
        self._clients: dict[str, ClosableModel] = {}

    def client_for(self, model_id: str) -> tuple[ClosableModel, str]:
        """The client that serves `model_id` and the name it knows the model by."""
        try:
            self._providers.check(model_id)
        except InvalidRequestError as exc:
            raise ModelError("configuration_error", str(exc)) from exc
        ref = split_model_id(model_id)
        if ref.provider == ANTHROPIC:
            return self._anthropic, ref.name
        client = self._clients.get(ref.provider)
        if client is None:
            endpoint = self._providers.endpoint(ref.provider)
            assert endpoint is not None  # check() said so
            client = self._clients[ref.provider] = self._make(endpoint)
        return client, ref.name

    async def turn(
        self,
        *,
        model: str,
        system: str | None,
        messages: Sequence[dict[str, JsonValue]],
        tools: Sequence[dict[str, JsonValue]],
        max_tokens: int,
        preview: TurnPreview | None = None,
    ) -> ModelTurn:
        client, name = self.client_for(model)
        return await client.turn(
            model=name, system=system, messages=messages, tools=tools, max_tokens=max_tokens, preview=preview
        )

    async def aclose(self) -> None:
        """Closes every client made (each owns connections of the event loop that made them)."""
        clients, self._clients = [self._anthropic, *self._clients.values()], {}
        for client in clients:
            await client.aclose()
