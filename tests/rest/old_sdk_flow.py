"""Run by an older `anthropic` SDK's Python (0.9x, as frameworks pin it), not collected by pytest.

The whole Managed Agents flow a framework built on that SDK would run: an agent with a custom tool, an
environment, a session; the stream opened first, a message sent, the custom tool answered when the agent asks,
the stream read until the turn's end; then the log listed and an unknown id looked up. Prints one JSON object:
what the SDK sent (headers and query, recorded by an httpx hook) and what it read.

    python old_sdk_flow.py BASE_URL TOKEN
"""

import json
import sys

import anthropic
import httpx

base_url, token = sys.argv[1], sys.argv[2]
sent = []


def record(request):
    sent.append(
        {
            "path": request.url.path,
            "query": dict(request.url.params),
            "x_api_key": request.headers.get("x-api-key") == token,
            "authorization": "authorization" in request.headers,
            "anthropic_version": request.headers.get("anthropic-version"),
        }
    )


client = anthropic.Anthropic(
    base_url=base_url, api_key=token, max_retries=0, http_client=httpx.Client(event_hooks={"request": [record]})
)
lookup = {
    "type": "custom",
    "name": "lookup",
    "description": "Looks a word up.",
    "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}},
}
agent = client.beta.agents.create(name="framework-agent", model="claude-test", tools=[lookup])
environment = client.beta.environments.create(name="framework-env")
session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id, title="from 0.9x")

streamed = []
stream = client.beta.sessions.events.stream(session.id)
client.beta.sessions.events.send(
    session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "define zebra"}]}]
)
for event in stream:
    streamed.append(event.type)
    if event.type == "agent.custom_tool_use":
        client.beta.sessions.events.send(
            session.id,
            events=[
                {
                    "type": "user.custom_tool_result",
                    "custom_tool_use_id": event.id,
                    "content": [{"type": "text", "text": "a striped horse"}],
                }
            ],
        )
    if event.type == "session.status_idle" and event.stop_reason.type == "end_turn":
        break
stream.close()

logged = [event.type for event in client.beta.sessions.events.list(session.id, limit=100)]
try:
    client.beta.sessions.retrieve("sesn_01JD7Y3Q4K2W8T6X0V5N9R1M3P")
    not_found = None
except anthropic.NotFoundError as exc:
    not_found = exc.body["error"]["type"]

print(
    json.dumps(
        {
            "version": anthropic.__version__,
            "session": client.beta.sessions.retrieve(session.id).status,
            "streamed": streamed,
            "logged": logged,
            "not_found": not_found,
            "sent": sent,
        }
    )
)
