import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from refunds import crypto
from refunds.payouts import HttpGatewayClient, PayoutDetails, clean_payout_details, mask

# --------------------------------------------------------------------------- encryption at rest

def test_encrypt_round_trips_and_hides_the_number(settings):
    # when
    token = crypto.encrypt("123456789012")
    # then
    assert "123456789012" not in token and crypto.decrypt(token) == "123456789012"
    assert crypto.encrypt("123456789012") != token  # random IV: equal numbers look different


def test_a_rotated_secret_key_still_decrypts_through_the_fallbacks(settings):
    # given
    token = crypto.encrypt("123456789012")
    old = settings.SECRET_KEY
    # when
    settings.SECRET_KEY = "a-brand-new-secret-key-for-this-test-0123456789"
    settings.SECRET_KEY_FALLBACKS = [old]
    # then
    assert crypto.decrypt(token) == "123456789012"


def test_another_secret_key_cannot_decrypt(settings):
    # given
    token = crypto.encrypt("123456789012")
    settings.SECRET_KEY = "someone-elses-secret-key-0123456789-abcdefghij"
    settings.SECRET_KEY_FALLBACKS = []
    # when / then
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token)


def test_payout_details_never_show_the_full_number():
    # given
    details = clean_payout_details(account_holder="Jane", bank_name="First", account_number="de44 5001-0517 5407")
    # then
    assert details.account_number == "DE44500105175407" and details.last4 == "5407"
    assert "DE44500105175407" not in repr(details) + str(details) + f"{details}"
    assert mask("rejected DE44500105175407", details) == "rejected ••••5407"


# --------------------------------------------------------------------------- the HTTP client, against a local server

class _Gateway(BaseHTTPRequestHandler):
    answers: list = []
    seen: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "body": body, "key": self.headers["Idempotency-Key"],
                                "auth": self.headers["Authorization"]})
        status, payload = type(self).answers.pop(0)
        raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_gateway():
    server = HTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Gateway.answers, _Gateway.seen = [], []
    yield f"http://127.0.0.1:{server.server_port}", _Gateway
    server.shutdown()
    server.server_close()


def _send(client):
    details = PayoutDetails("Jane Doe", "First Bank", "123456789012")
    return client.send_payout(idempotency_key="payout:7", amount=1500, currency="USD",
                              account_holder=details.account_holder, bank_name=details.bank_name,
                              account_number=details.account_number, reference="refund-request-3")


def test_http_client_posts_the_payout_with_an_idempotency_key(local_gateway):
    # given
    url, gateway = local_gateway
    gateway.answers.append((200, {"id": "po_1", "status": "paid"}))
    # when
    result = _send(HttpGatewayClient(base_url=url, api_key="secret"))
    # then
    assert (result.ok, result.reference) == (True, "po_1")
    seen = gateway.seen[0]
    assert (seen["path"], seen["key"], seen["auth"]) == ("/payouts", "payout:7", "Bearer secret")
    assert seen["body"] == {"amount": 1500, "currency": "USD", "reference": "refund-request-3",
                            "destination": {"account_holder": "Jane Doe", "bank_name": "First Bank",
                                            "account_number": "123456789012"}}


@pytest.mark.parametrize(("answer", "error"), [
    ((200, {"id": "po_2", "status": "failed", "error": "Account closed"}), "Account closed"),
    ((500, {"error": "boom"}), "Gateway answered HTTP 500."),
    ((200, "<html>"), "Gateway answered something that is not JSON."),
])
def test_http_client_turns_every_bad_answer_into_a_failed_attempt(local_gateway, answer, error):
    # given
    url, gateway = local_gateway
    gateway.answers.append(answer)
    # when
    result = _send(HttpGatewayClient(base_url=url, api_key="k"))
    # then
    assert (result.ok, result.error) == (False, error)


def test_http_client_unreachable_gateway_is_a_failed_attempt():
    # given: a port nothing listens on
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # when
    result = _send(HttpGatewayClient(base_url=f"http://127.0.0.1:{port}", api_key="k", timeout=2))
    # then
    assert result.ok is False and result.error.startswith("Gateway unreachable")


def test_http_client_without_a_url_fails_clearly(settings):
    settings.REFUNDS_GATEWAY_URL = ""
    result = _send(HttpGatewayClient())
    assert (result.ok, result.error) == (False, "REFUNDS_GATEWAY_URL is not set.")
