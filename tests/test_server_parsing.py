"""Request parsing on its own: frames + limits -> a typed request or a RequestError.

No sockets and no threads: the messages are lists of bytes, as a ROUTER would deliver
them (the client's routing id first)."""

from __future__ import annotations

from typing import Any

import pytest

from dni.server.limits import Limits
from dni.server.parsing import PingRequest, Request, RequestError, RunRequest, parse_request
from dni_client import protocol as P

IDENTITY = b"\x00client"
LIMITS = Limits()


def message(header: dict[str, Any], *data: bytes, envelope: tuple[bytes, ...] = ()
            ) -> list[bytes]:
    return [IDENTITY, *envelope, b"", P.encode_header(header), *data]


def run_header(**changes: Any) -> dict[str, Any]:
    header = {"v": 1, "op": "run", "id": "job-1", "family": "tiny", "width": 3,
              "height": 2, "layout": "rgb8", "strength": 0.4}
    header.update(changes)
    return {k: v for k, v in header.items() if v is not None}


def refused(frames: list[bytes], limits: Limits = LIMITS) -> RequestError:
    with pytest.raises(RequestError) as info:
        parse_request(frames, limits)
    return info.value


@pytest.mark.parametrize("op", ["hello", "families", "stats", "cancel"])
def test_ops_without_data(op: str) -> None:
    request = parse_request(message({"v": 1, "op": op, "id": "a.b:c-1"}), LIMITS)
    assert request == Request(client=(IDENTITY,), op=op, id="a.b:c-1")


def test_a_ping_may_ask_about_jobs() -> None:
    plain = parse_request(message({"v": 1, "op": "ping", "id": "p"}), LIMITS)
    assert plain == PingRequest(client=(IDENTITY,), op="ping", id="p", jobs=())
    asking = parse_request(message({"v": 1, "op": "ping", "id": "p", "jobs": ["a", "b"]}),
                           LIMITS)
    assert isinstance(asking, PingRequest) and asking.jobs == ("a", "b")
    for jobs in ("a", ["a\n"], [1], ["x"] * (P.MAX_PING_JOBS + 1)):
        header = {"v": 1, "op": "ping", "id": "p", "jobs": jobs}
        assert refused(message(header)).code == "bad_header", jobs


# -- who a message is from: limits count connections, not claimed routing ids ------------

BROKER = b"\0broker-1234"


def test_the_connection_is_the_peer_not_the_routing_frames_it_claims() -> None:
    for envelope in ((), (b"fake-1",), (b"fake-2", b"fake-3")):
        request = parse_request(message(run_header(), bytes(18), envelope=envelope), LIMITS)
        assert request.client == (IDENTITY, *envelope)  # replies go where it asked
        assert request.connection == (IDENTITY,)
        assert request.direct is (not envelope)


def test_behind_our_broker_the_connection_is_the_brokers_client() -> None:
    frames = [BROKER, b"client-7", b"fake", b"", P.encode_header(run_header()), bytes(18)]
    request = parse_request(frames, LIMITS, brokers={BROKER})
    assert request.via_broker and not request.direct
    assert request.connection == (BROKER, b"client-7")
    assert request.client == (BROKER, b"client-7", b"fake")
    # The same frames from a peer that is not one of our brokers prove nothing.
    other = parse_request([b"\0peer", *frames[1:]], LIMITS, brokers={BROKER})
    assert other.connection == (b"\0peer",)


@pytest.mark.parametrize("frames", [
    [BROKER, b"client-7", b"junk"],                                  # no delimiter
    [BROKER, b"client-7", b"{}"],
    [BROKER, b"client-7", *[b"r"] * (P.MAX_ENVELOPE + 1), b"", b"{}"],  # envelope too long
])
def test_errors_through_a_broker_reach_its_client(frames: list[bytes]) -> None:
    """A reply to the bare broker would be dropped by its frontend: no answer at all."""
    with pytest.raises(RequestError) as info:
        parse_request(frames, LIMITS, brokers={BROKER})
    assert info.value.code == "bad_message"
    assert info.value.client == (BROKER, b"client-7")


def test_a_broker_does_not_use_up_its_clients_envelope() -> None:
    envelope = tuple(b"r%d" % i for i in range(P.MAX_ENVELOPE - 1))
    frames = [BROKER, b"client-7", *envelope, b"", P.encode_header(run_header()), bytes(18)]
    assert parse_request(frames, LIMITS, brokers={BROKER}).client[2:] == envelope


def test_run_with_every_frame() -> None:
    pixels, mask, smap = bytes(18), bytes(range(6)), bytes(6)
    header = run_header(strength=None, weights=[1, 0], mode="pixel", preview=True, tile=64,
                        layout="R'G'B' u8", frames=["pixels", "mask", "strength_map"])
    request = parse_request(message(header, pixels, mask, smap, envelope=(b"broker",)),
                            LIMITS)
    assert isinstance(request, RunRequest)
    assert request.client == (IDENTITY, b"broker")
    assert (request.family, request.width, request.height) == ("tiny", 3, 2)
    assert request.layout == "rgb8"  # the canonical name of the editor's alias
    assert request.weights == [1.0, 0.0] and request.strength is None
    assert (request.mode, request.preview, request.tile) == ("pixel", True, 64)
    assert request.frames == {"pixels": pixels, "mask": mask, "strength_map": smap}


def test_run_defaults() -> None:
    request = parse_request(message(run_header(), bytes(18)), LIMITS)
    assert isinstance(request, RunRequest)
    assert (request.strength, request.weights, request.mode, request.preview,
            request.tile) == (0.4, None, "network", False, None)


def test_no_delimiter_is_answered_to_the_bare_identity() -> None:
    error = refused([IDENTITY, b"junk", b"more"])
    assert (error.code, error.client, error.request_id) == ("bad_message", (IDENTITY,), None)


def test_errors_name_the_client_and_the_id_as_given() -> None:
    error = refused(message({"v": 2, "op": "hello", "id": "not valid!"},
                            envelope=(b"broker",)))
    assert error.code == "unsupported_version"
    assert error.client == (IDENTITY, b"broker")
    assert error.request_id == "not valid!"  # the server decides whether to echo it


@pytest.mark.parametrize(("frames", "code"), [
    ([IDENTITY, b""], "bad_message"),                               # no header
    ([IDENTITY, b"", b"[1, 2]"], "bad_message"),                    # not an object
    ([IDENTITY, b"", b'{"v": NaN}'], "bad_message"),                # NaN refused
    ([IDENTITY, b"", b"\xff"], "bad_message"),                      # not UTF-8
    ([IDENTITY, b"", b"{}", b"1", b"2", b"3", b"4"], "too_large"),  # five frames
    ([IDENTITY, b"", b" " * (P.MAX_HEADER_BYTES + 1)], "too_large"),
])
def test_malformed_messages(frames: list[bytes], code: str) -> None:
    assert refused(frames).code == code


@pytest.mark.parametrize(("header", "data", "code"), [
    ({"v": 1, "op": "hello"}, (), "bad_header"),                     # no id
    ({"v": 1, "op": "hello", "id": "x" * 65}, (), "bad_header"),
    ({"v": 1, "op": "hello", "id": "a b"}, (), "bad_header"),
    ({"v": 1, "op": "hello", "id": "abc\n"}, (), "bad_header"),      # "$" matched before \n
    ({"v": True, "op": "hello", "id": "a"}, (), "unsupported_version"),  # bool is an int
    ({"v": 1.0, "op": "hello", "id": "a"}, (), "unsupported_version"),
    ({"op": "hello", "id": "a"}, (), "unsupported_version"),
    ({"v": 1, "op": "explode", "id": "a"}, (), "unknown_op"),
    ({"v": 1, "op": ["run"], "id": "a"}, (), "unknown_op"),          # unhashable op
    ({"v": 1, "op": "explode", "id": "a"}, (b"x",), "bad_frames"),   # data checked first
    ({"v": 1, "op": "ping", "id": "a"}, (b"x",), "bad_frames"),
])
def test_header_errors(header: dict[str, Any], data: tuple[bytes, ...], code: str) -> None:
    assert refused(message(header, *data)).code == code


@pytest.mark.parametrize(("changes", "data", "code"), [
    ({"family": ""}, (bytes(18),), "bad_header"),
    ({"width": 0}, (bytes(18),), "bad_header"),
    ({"width": 2.5}, (bytes(18),), "bad_header"),
    ({"height": True}, (bytes(18),), "bad_header"),
    ({"width": 16385}, (bytes(18),), "bad_header"),
    ({"width": 9000, "height": 9000}, (bytes(18),), "too_large"),
    ({"layout": "cmyk8"}, (bytes(18),), "bad_layout"),
    ({"strength": "strong"}, (bytes(18),), "bad_header"),
    ({"weights": []}, (bytes(18),), "bad_header"),
    ({"weights": [True, 0]}, (bytes(18),), "bad_header"),
    ({"weights": [0.5] * 65}, (bytes(18),), "bad_header"),
    ({"mode": "magic"}, (bytes(18),), "bad_header"),
    ({"preview": 1}, (bytes(18),), "bad_header"),
    ({"tile": 0}, (bytes(18),), "bad_header"),
    ({"frames": ["mask"]}, (bytes(6),), "bad_header"),
    ({"frames": ["pixels", "pixels"]}, (bytes(18), bytes(18)), "bad_header"),
    ({"frames": ["pixels", {"x": 1}]}, (bytes(18), bytes(6)), "bad_header"),
    ({}, (), "bad_frames"),
    ({}, (bytes(18), bytes(6)), "bad_frames"),
    ({}, (bytes(17),), "bad_frames"),
    ({"frames": ["pixels", "mask"]}, (bytes(18), bytes(5)), "bad_frames"),
])
def test_run_errors(changes: dict[str, Any], data: tuple[bytes, ...], code: str) -> None:
    error = refused(message(run_header(**changes), *data))
    assert error.code == code and error.request_id == "job-1"


def test_the_first_failing_check_decides() -> None:
    """A header wrong in several ways gets the code of the check the protocol runs first."""
    header = run_header(width=0, layout="cmyk8", mode="magic")
    assert refused(message(header)).code == "bad_header"
    assert "'width'" in refused(message(header)).message


def test_limits_are_the_servers() -> None:
    small = Limits(max_side=4, max_pixels=6, max_header_bytes=200)
    assert refused(message(run_header(width=5), bytes(30)), small).code == "bad_header"
    assert refused(message(run_header(width=4), bytes(24)), small).code == "too_large"
    assert refused(message(run_header(id="x" * 60, family="f" * 60, layout="rgba32f"),
                           bytes(96)), small).code == "too_large"  # header over 200 bytes
    assert isinstance(parse_request(message(run_header(), bytes(18)), small), RunRequest)


def test_the_servers_ops_decide_what_is_known() -> None:
    frames = message({"v": 1, "op": "stats", "id": "a"})
    with pytest.raises(RequestError) as info:
        parse_request(frames, LIMITS, ops=("hello", "ping"))
    assert info.value.code == "unknown_op" and "hello, ping" in info.value.message


@pytest.mark.parametrize("changes", [{"strength": 10 ** 400}, {"weights": [10 ** 400, 0]},
                                     {"strength": -(10 ** 400)}])
def test_numbers_too_large_for_a_float_are_a_header_error(changes: dict[str, Any]) -> None:
    """JSON integers have no size limit: 400 digits must be refused as a bad header, not
    crash the parser into an `internal` error."""
    error = refused(message(run_header(**changes), b"\0" * 3 * 2 * 3))
    assert error.code == "bad_header" and "finite" in error.message
