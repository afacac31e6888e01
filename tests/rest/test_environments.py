"""`client.beta.environments` against the server: the hosted `config` shape mapped onto ours, both ways."""

from __future__ import annotations

import anthropic
import pytest
from anthropic.types.beta import BetaEnvironment, BetaEnvironmentDeleteResponse
from anthropic.types.beta.beta_cloud_config import BetaCloudConfig
from anthropic.types.beta.beta_limited_network import BetaLimitedNetwork
from anthropic.types.beta.beta_packages import BetaPackages
from rest_serving import RestServer


def test_an_environment_round_trips_in_the_hosted_shape(rest: RestServer) -> None:
    client = rest.client()
    raw = client.beta.environments.with_raw_response.create(
        name="py",
        description="python tools",
        config={
            "type": "cloud",
            "networking": {"type": "unrestricted"},
            "packages": {"type": "packages", "pip": ["requests==2.32.3"], "apt": ["ripgrep"]},
            "image": "python:3.12-slim",  # type: ignore[typeddict-unknown-key]  # our extension
            "env": {"MODE": "test"},
        },
        metadata={"team": "infra"},
    )
    body = raw.http_response.json()
    assert set(BetaEnvironment.model_fields) <= set(body)
    assert set(BetaCloudConfig.model_fields) <= set(body["config"])
    assert set(BetaPackages.model_fields) <= set(body["config"]["packages"])
    env = raw.parse()
    assert env.id.startswith("env_")
    assert env.type == "environment"
    assert env.config.type == "cloud"
    assert env.config.networking.type == "unrestricted"
    assert env.config.packages.pip == ["requests==2.32.3"]
    assert env.config.packages.cargo == []
    assert body["config"]["image"] == "python:3.12-slim"
    assert body["config"]["env"] == {"MODE": "test"}

    assert client.beta.environments.retrieve(env.id).to_dict() == env.to_dict()


def test_the_default_network_is_shown_as_none_and_update_keeps_omitted_fields(rest: RestServer) -> None:
    client = rest.client()
    raw = client.beta.environments.with_raw_response.create(
        name="plain", config={"type": "cloud", "packages": {"npm": ["typescript"]}}
    )
    assert raw.http_response.json()["config"]["networking"] == {"type": "none"}
    env = raw.parse()
    # The SDK has no 'none' network type: it reads the tag into its first variant, still typed 'none'.
    assert env.config.networking.type == "none"  # type: ignore[comparison-overlap]

    updated = client.beta.environments.update(env.id, description="now described", metadata={"k": "v"})
    assert updated.description == "now described"
    assert updated.metadata == {"k": "v"}
    assert updated.config.packages.npm == ["typescript"]

    opened = client.beta.environments.update(env.id, config={"type": "cloud", "networking": {"type": "unrestricted"}})
    assert opened.config.networking.type == "unrestricted"
    assert opened.config.packages.npm == ["typescript"]
    cleared = client.beta.environments.update(env.id, description=None, metadata={"k": None})
    assert cleared.description is None
    assert cleared.metadata == {}


def test_limited_networking_is_in_the_hosted_shape_both_ways(rest: RestServer) -> None:
    client = rest.client()
    raw = client.beta.environments.with_raw_response.create(
        name="fenced",
        config={
            "type": "cloud",
            "networking": {"type": "limited", "allowed_hosts": ["API.example.com", "*.example.org:8443"]},
        },
    )
    assert raw.http_response.json()["config"]["networking"] == {
        "type": "limited",
        "allowed_hosts": ["api.example.com", "*.example.org:8443"],
        "allow_package_managers": False,
        "allow_mcp_servers": False,
    }
    env = raw.parse()
    assert isinstance(env.config.networking, BetaLimitedNetwork)
    assert client.beta.environments.retrieve(env.id).to_dict() == env.to_dict()

    # As the hosted API documents: omitted (or null) fields of `limited` keep their values on update.
    opened = client.beta.environments.update(
        env.id,
        config={
            "type": "cloud",
            "networking": {"type": "limited", "allow_package_managers": True, "allow_mcp_servers": None},
            "packages": {"pip": ["requests==2.32.3"]},
        },
    )
    assert opened.config.networking == BetaLimitedNetwork(
        type="limited",
        allowed_hosts=["api.example.com", "*.example.org:8443"],
        allow_package_managers=True,
        allow_mcp_servers=False,
    )
    assert opened.config.packages.pip == ["requests==2.32.3"]
    # From another type, they take the defaults.
    client.beta.environments.update(env.id, config={"type": "cloud", "networking": {"type": "unrestricted"}})
    fresh = client.beta.environments.update(
        env.id, config={"type": "cloud", "networking": {"type": "limited"}, "packages": {"pip": []}}
    )
    assert fresh.config.networking == BetaLimitedNetwork(
        type="limited", allowed_hosts=[], allow_package_managers=False, allow_mcp_servers=False
    )


def test_packages_under_limited_are_refused_without_package_managers_in_either_order(rest: RestServer) -> None:
    client = rest.client()
    refusal = "set networking.allow_package_managers: true, or drop the packages"
    limited = client.beta.environments.create(
        name="limited", config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["x.org"]}}
    )
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.beta.environments.update(limited.id, config={"type": "cloud", "packages": {"npm": ["left-pad"]}})
    assert refusal in str(refused.value)
    packaged = client.beta.environments.create(name="packaged", config={"type": "cloud", "packages": {"apt": ["jq"]}})
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.beta.environments.update(packaged.id, config={"type": "cloud", "networking": {"type": "limited"}})
    assert refusal in str(refused.value)
    # Switching package managers off later is refused too, while the packages stay.
    client.beta.environments.update(
        packaged.id, config={"type": "cloud", "networking": {"type": "limited", "allow_package_managers": True}}
    )
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.beta.environments.update(
            packaged.id, config={"type": "cloud", "networking": {"type": "limited", "allow_package_managers": False}}
        )
    assert refusal in str(refused.value)
    assert client.beta.environments.retrieve(limited.id).config.packages.npm == []
    kept = client.beta.environments.retrieve(packaged.id).config.networking
    assert isinstance(kept, BetaLimitedNetwork)
    assert kept.allow_package_managers


@pytest.mark.parametrize(
    ("sandbox", "words"),
    [
        ({"type": "self_hosted"}, "self_hosted"),
        ({"type": "cloud", "packages": {"cargo": ["ripgrep"]}}, "cargo"),
        ({"type": "cloud", "packages": {"gem": ["rails"], "go": ["x/y@latest"]}}, "gem"),
        (
            {"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["https://x.org"]}},
            "no spaces, schemes, paths",
        ),
        ({"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["*.*.x.org"]}}, "'*.example.com'"),
        ({"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["x.org"] * 257}}, "256"),
        (
            {"type": "cloud", "networking": {"type": "limited"}, "packages": {"pip": ["requests"]}},
            "set networking.allow_package_managers: true, or drop the packages",
        ),
        ({"type": "cloud", "packages": {"pip": ["not a spec!"]}}, "pip"),
        ({"type": "cloud", "image": "Not An Image"}, "image"),
    ],
)
def test_what_this_server_cannot_do_is_refused_with_a_reason(
    rest: RestServer, sandbox: dict[str, object], words: str
) -> None:
    client = rest.client()
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.beta.environments.create(name="x", config=sandbox)  # type: ignore[arg-type]
    assert words in str(refused.value)
    assert list(client.beta.environments.list()) == []  # nothing half-written


def test_names_are_unique_and_archived_environments_are_read_only(rest: RestServer) -> None:
    client = rest.client()
    env = client.beta.environments.create(name="one")
    with pytest.raises(anthropic.ConflictError):
        client.beta.environments.create(name="one")
    archived = client.beta.environments.archive(env.id)
    assert archived.archived_at is not None
    with pytest.raises(anthropic.ConflictError):
        client.beta.environments.update(env.id, description="late")
    assert [e.id for e in client.beta.environments.list()] == []
    assert [e.id for e in client.beta.environments.list(include_archived=True)] == [env.id]

    raw = client.beta.environments.with_raw_response.delete(env.id)
    assert raw.http_response.json() == {"id": env.id, "type": "environment_deleted"}
    assert isinstance(raw.parse(), BetaEnvironmentDeleteResponse)
    for call in (client.beta.environments.retrieve, client.beta.environments.delete, client.beta.environments.archive):
        with pytest.raises(anthropic.NotFoundError):
            call(env.id)


@pytest.mark.anyio
async def test_environments_paginate_through_the_async_sdk(rest: RestServer) -> None:
    async with rest.async_client() as client:
        made = [await client.beta.environments.create(name=f"e{i}") for i in range(5)]
        first = await client.beta.environments.list(limit=2)
        assert len(first.data) == 2
        assert first.has_next_page()
        seen = [e.id async for e in await client.beta.environments.list(limit=2)]
        assert sorted(seen) == sorted(e.id for e in made)
        assert len(seen) == 5
        updated = await client.beta.environments.update(made[0].id, name="renamed")
        assert updated.name == "renamed"
        assert (await client.beta.environments.retrieve(made[0].id)).name == "renamed"
        with pytest.raises(anthropic.BadRequestError):
            await client.beta.environments.list(limit=101)
        with pytest.raises(anthropic.BadRequestError):
            await client.beta.environments.create(name="bad", scope="account")
        with pytest.raises(anthropic.NotFoundError):
            await client.beta.environments.retrieve("env_01JD7Y3Q4K2W8T6X0V5N9R1M3P")
