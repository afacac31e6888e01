"""One `ModelClient` over every provider: a turn goes to the provider its model id names.

`anthropic/<model>` and bare ids go to the Anthropic client; `openai/<model>` and `<endpoint>/<model>` to an
OpenAI-compatible client for that endpoint, made on first use and kept (its HTTP connections are reused).
Each provider is given the bare model name. A model id no provider serves (an endpoint removed from the
providers file after a session was created) ends the turn with a `configuration_error` that says what to do.

`warm` does, ahead of time, what a provider's first turn would otherwise wait for (importing its SDK takes a
second or more): the Anthropic client always, an OpenAI-compatible one for each endpoint that is configured
(`OPENAI_API_KEY` set, or declared in the providers file) or that the default model names.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from pydantic import JsonValue

from server.brain.model import ModelClient, ModelError, ModelTurn, TurnPreview
from server.core.errors import InvalidRequestError
from server.core.models import ANTHROPIC, OPENAI, Endpoint, Providers, split_model_id

__all__ = ["ClosableModel", "ModelRouter"]


class ClosableModel(ModelClient, Protocol):
    """A provider's client: it holds HTTP connections, closed with the server."""

    async def aclose(self) -> None: ...

    def warm(self) -> None:
        """Imports the SDK and makes the client (blocking; for a background thread)."""


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
        self._making = threading.Lock()  # `warm` makes clients in a thread while turns may ask for them
        self._closed = False

    def client_for(self, model_id: str) -> tuple[ClosableModel, str]:
        """The client that serves `model_id` and the name it knows the model by."""
        try:
            self._providers.check(model_id)
        except InvalidRequestError as exc:
            raise ModelError("configuration_error", str(exc)) from exc
        ref = split_model_id(model_id)
        if ref.provider == ANTHROPIC:
            return self._anthropic, ref.name
        return self._endpoint_client(ref.provider), ref.name

    def _endpoint_client(self, provider: str) -> ClosableModel:
        with self._making:
            client = self._clients.get(provider)
            if client is None:
                endpoint = self._providers.endpoint(provider)
                assert endpoint is not None  # check() said so
                client = self._clients[provider] = self._make(endpoint)
            return client

    def warm(self, default_model: str) -> None:
        """Imports the SDKs and makes the clients the first turns will likely use (blocking; for a background
        thread: nothing waits for it, and a turn that comes first makes its client itself)."""
        self._anthropic.warm()
        for provider in self._configured(default_model):
            if self._closed:  # the server stopped meanwhile: a client made now would never be closed
                return
            self._endpoint_client(provider).warm()

    def _configured(self, default_model: str) -> list[str]:
        """The OpenAI-compatible endpoints worth warming, in a stable order."""
        named = [*self._providers.endpoints]
        if self._providers.openai.key_present:
            named.insert(0, OPENAI)
        ref = split_model_id(default_model)
        if ref.provider != ANTHROPIC and self._providers.endpoint(ref.provider) is not None:
            named.append(ref.provider)
        return list(dict.fromkeys(named))

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
        with self._making:
            clients, self._clients = [self._anthropic, *self._clients.values()], {}
            self._closed = True
        for client in clients:
            await client.aclose()
