"""The official OpenAI and Anthropic Python SDKs, called directly against the mock
provider and through the Loupe shim: every scenario must look the same to the SDK
(apart from the usage chunk the shim hides when the client did not ask for it).

Run by sdk-shim/tests/python_sdks.rs, which then checks the spans the shim exported.
Prints one JSON object (scenario -> outcome) on stdout; exits 1 on any mismatch.
"""

import argparse
import json
import sys

import anthropic
import openai

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"}},
    "required": ["city", "temp_c"],
    "additionalProperties": False,
}
MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
OA_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
AN_MSGS = [{"role": "user", "content": "Say hello"}]


def scenario(name):
    return {"x-mock-scenario": name}


def dump(obj):
    return json.loads(obj.model_dump_json())


class Runner:
    def __init__(self, args):
        self.failures = []
        self.outcomes = {}
        tenant = {"X-Loupe-Tenant": "sdk-tenant", "X-Loupe-Feature": "sdk-tests", "X-Loupe-User": "sdk-user"}
        self.oa = {
            "direct": openai.OpenAI(api_key=args.key, base_url=args.mock_openai, max_retries=0),
            "shim": openai.OpenAI(api_key=args.key, base_url=args.shim_openai, max_retries=0, default_headers=tenant),
        }
        self.an = {
            "direct": anthropic.Anthropic(api_key=args.key, base_url=args.mock_anthropic, max_retries=0),
            "shim": anthropic.Anthropic(api_key=args.key, base_url=args.shim_anthropic, max_retries=0, default_headers=tenant),
        }

    def same(self, name, fn):
        """Run fn(client-kind) directly and through the shim; outcomes must be equal."""
        try:
            direct, shim = fn("direct"), fn("shim")
        except Exception as e:  # noqa: BLE001 - report, don't crash the whole run
            self.failures.append(f"{name}: raised {type(e).__name__}: {e}")
            return
        if direct != shim:
            if isinstance(direct, list) and isinstance(shim, list):
                i = next((i for i, (d, s) in enumerate(zip(direct, shim)) if d != s), min(len(direct), len(shim)))
                direct = f"{len(direct)} items, [{i}] = {direct[i] if i < len(direct) else '(none)'}"
                shim = f"{len(shim)} items, [{i}] = {shim[i] if i < len(shim) else '(none)'}"
            self.failures.append(f"{name}: differs\n direct: {direct}\n shim:   {shim}")
        self.outcomes[name] = shim

    # --- OpenAI ---------------------------------------------------------------

    def openai_chat(self, kind, **kw):
        return dump(self.oa[kind].chat.completions.create(model="gpt-4o-mini", messages=MSGS, **kw))

    def openai_stream(self, kind, **kw):
        stream = self.oa[kind].chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True, **kw)
        return [dump(c) for c in stream]

    def openai_error(self, kind, name):
        try:
            self.oa[kind].chat.completions.create(model="gpt-4o-mini", messages=MSGS, extra_headers=scenario(name))
        except openai.APIStatusError as e:
            return {
                "class": type(e).__name__,
                "status": e.status_code,
                "body": e.body,
                "retry_after": e.response.headers.get("retry-after"),
                "request_id": e.request_id,
            }
        return "no error"

    def openai_disconnect(self, kind):
        stream = self.oa[kind].chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, stream=True, extra_headers=scenario("slow_stream"))
        got = []
        for chunk in stream:
            got.append(dump(chunk))
            if len(got) == 4:
                break
        stream.close()
        return got

    def openai_responses(self, kind, stream):
        c = self.oa[kind].responses
        if stream:
            return [dump(e) for e in c.create(model="gpt-4.1-mini", input="hi", instructions="terse", stream=True)]
        return dump(c.create(model="gpt-4.1-mini", input="hi"))

    # --- Anthropic --------------------------------------------------------------

    def anthropic_create(self, kind, **kw):
        kw.setdefault("messages", AN_MSGS)
        r = self.an[kind].messages.create(model="claude-sonnet-4-5", max_tokens=100, system="Be brief.", **kw)
        if kw.get("stream"):
            return [dump(e) for e in r]
        return dump(r)

    def anthropic_error(self, kind, name):
        try:
            self.an[kind].messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=AN_MSGS, extra_headers=scenario(name))
        except anthropic.APIStatusError as e:
            return {"class": type(e).__name__, "status": e.status_code, "body": e.body,
                    "retry_after": e.response.headers.get("retry-after")}
        return "no error"

    def anthropic_disconnect(self, kind):
        got = []
        with self.an[kind].messages.stream(model="claude-sonnet-4-5", max_tokens=500, messages=AN_MSGS,
                                           extra_headers=scenario("slow_stream")) as s:
            for text in s.text_stream:
                got.append(text)
                if len(got) == 4:
                    break
        return got

    def run(self):
        rf = {"type": "json_schema", "json_schema": {"name": "weather", "strict": True, "schema": SCHEMA}}
        self.same("openai_chat", lambda k: self.openai_chat(k))
        self.same("openai_stream", lambda k: self.openai_stream(k))
        self.same("openai_stream_usage", lambda k: self.openai_stream(k, stream_options={"include_usage": True}))
        self.same("openai_tools", lambda k: self.openai_chat(k, tools=OA_TOOLS))
        self.same("openai_tools_stream", lambda k: self.openai_stream(k, tools=OA_TOOLS))
        self.same("openai_schema_valid", lambda k: self.openai_chat(k, response_format=rf))
        self.same("openai_schema_invalid", lambda k: self.openai_chat(k, response_format=rf, extra_headers=scenario("invalid_output")))
        self.same("openai_429", lambda k: self.openai_error(k, "rate_limit"))
        self.same("openai_500", lambda k: self.openai_error(k, "server_error"))
        self.same("openai_disconnect", lambda k: self.openai_disconnect(k))
        self.same("openai_responses", lambda k: self.openai_responses(k, False))
        self.same("openai_responses_stream", lambda k: self.openai_responses(k, True))
        self.same("openai_embeddings", lambda k: dump(self.oa[k].embeddings.create(model="text-embedding-3-small", input="hello")))

        tool = [{"name": "record_weather", "input_schema": SCHEMA}]
        forced = {"type": "tool", "name": "record_weather"}
        self.same("anthropic_message", lambda k: self.anthropic_create(k))
        self.same("anthropic_stream", lambda k: self.anthropic_create(k, stream=True))
        self.same("anthropic_tools_stream", lambda k: self.anthropic_create(k, stream=True, tools=[{"name": "get_weather", "input_schema": {"type": "object"}}]))
        self.same("anthropic_schema_valid", lambda k: self.anthropic_create(k, tools=tool, tool_choice=forced))
        self.same("anthropic_schema_invalid", lambda k: self.anthropic_create(k, tools=tool, tool_choice=forced, extra_headers=scenario("invalid_output")))
        self.same("anthropic_429", lambda k: self.anthropic_error(k, "rate_limit"))
        self.same("anthropic_500", lambda k: self.anthropic_error(k, "server_error"))
        self.same("anthropic_disconnect", lambda k: self.anthropic_disconnect(k))

        # The usage chunk: asked for → the client sees it; not asked for → hidden.
        if not any(c.get("usage") for c in self.outcomes.get("openai_stream_usage", [])):
            self.failures.append("openai_stream_usage: the usage chunk is missing")
        if any(c.get("usage") for c in self.outcomes.get("openai_stream", [])):
            self.failures.append("openai_stream: the injected usage chunk reached the client")


def main():
    p = argparse.ArgumentParser()
    for a in ("--mock-openai", "--mock-anthropic", "--shim-openai", "--shim-anthropic", "--key"):
        p.add_argument(a, required=True)
    r = Runner(p.parse_args())
    r.run()
    json.dump({"scenarios": sorted(r.outcomes), "failures": r.failures}, sys.stdout)
    for f in r.failures:
        print(f, file=sys.stderr)
    sys.exit(1 if r.failures else 0)


if __name__ == "__main__":
    main()
