"""A tiny stand-in for the Slack Web API on 127.0.0.1, standard library only, for .ci/first_hour:
the bot's start-up check and `platform-feedback check` talk to it instead of slack.com.

Usage: python fake_slack.py PORT_FILE TOKEN. Listens on a free port (written to PORT_FILE). Every
method answers ``ok`` for TOKEN (channels exist and the bot is a member, people and user groups
exist) with manifest.yml's scopes in X-OAuth-Scopes, as Slack does; any other token is invalid_auth.
Posts to ``/response_url/...`` (a slash command's answer) are appended to PORT_FILE.responses.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

SCOPES = ("commands,chat:write,reactions:read,channels:history,groups:history,usergroups:read,files:write,users:read,"
          "users:read.email,channels:read,groups:read,im:history")


class Handler(BaseHTTPRequestHandler):
    token = ""
    responses_file = ""  # PORT_FILE.responses: one JSON line per post to a response URL

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        body = json.loads(raw) if raw and "json" in self.headers.get("Content-Type", "") else dict(parse_qsl(raw))
        method = urlparse(self.path).path.rsplit("/", 1)[-1]
        if urlparse(self.path).path.startswith("/response_url/"):  # a command's answer: kept for first_hour to read
            with open(self.responses_file, "a", encoding="utf-8") as out:
                out.write(json.dumps(body) + "\n")
            answer = {"ok": True}
        elif self.headers.get("Authorization", "") != f"Bearer {self.token}":
            answer = {"ok": False, "error": "invalid_auth"}
        elif method == "auth.test":
            answer = {"ok": True, "url": "https://ci.slack.com/", "team": "CI", "user": "platform-feedback",
                      "team_id": "T0CI000001", "user_id": "U0BOT00001", "bot_id": "B0BOT00001"}
        elif method == "conversations.info":
            answer = {"ok": True, "channel": {"id": body.get("channel"), "name": "ci-channel", "is_member": True}}
        elif method == "users.info":
            answer = {"ok": True, "user": {"id": body.get("user"), "name": "someone", "deleted": False}}
        elif method == "usergroups.users.list":
            answer = {"ok": True, "users": ["U0HOST0001"]}
        else:
            answer = {"ok": True}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("X-OAuth-Scopes", SCOPES)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST


if __name__ == "__main__":
    Handler.token = sys.argv[2]
    Handler.responses_file = sys.argv[1] + ".responses"
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Path(sys.argv[1]).write_text(str(server.server_port))
    server.serve_forever()
