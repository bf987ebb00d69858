"""fernet-bench's Python side, run by Debian's /usr/bin/python3.

  pybench.py probe CLIENT   versions, and whether the client at CLIENT imports
  pybench.py run < cfg.json one round; prints its figures as JSON

A round measures, with the same keys and tokens as the Go side:
  - cryptography in process: Fernet.encrypt, MultiFernet.decrypt and
    MultiFernet.rotate of a 32-byte plaintext (per call), and rotate over
    the batch tokens (items per second);
  - the Python client (client/python, fernet_sidecar.SidecarFernet) against
    the sidecar: rotate_many over the batch tokens (items per second), and
    the latency of decrypt;
  - a bare call to the echo server: the client's own generated stub on a
    plain grpc.insecure_channel, no options, no deadline; and the same with
    a per-call 5 s timeout (which the client avoids by putting its timeout
    in the channel's service config), and to the sidecar, and the client
    with timeout=None, to tell apart what the client, a deadline and the
    server each add.
Latencies alternate between the client and the bare stub in blocks, so
that drift in the machine's load falls on both.
"""

import json
import statistics
import sys
import time


def versions():
    out = {"python": sys.version.split()[0]}
    try:
        import cryptography

        out["cryptography"] = cryptography.__version__
    except Exception as exc:  # noqa: BLE001 - reported, not handled
        out["cryptography_error"] = repr(exc)
    try:
        import grpc

        out["grpcio"] = grpc.__version__
    except Exception as exc:  # noqa: BLE001
        out["grpcio_error"] = repr(exc)
    try:
        import google.protobuf

        out["protobuf"] = google.protobuf.__version__
    except Exception as exc:  # noqa: BLE001
        out["protobuf_error"] = repr(exc)
    return out


def import_client(path):
    """The Python client and its stubs, or the reason they do not import."""
    sys.path.insert(0, path)
    try:
        from fernet_sidecar import SidecarFernet
        from fernet_sidecar._pb import fernet_pb2, fernet_pb2_grpc
    except Exception as exc:  # noqa: BLE001
        return None, "the Python client (%s) does not import: %r" % (path, exc)
    return (SidecarFernet, fernet_pb2, fernet_pb2_grpc), None


def per_call_us(fn, n):
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def rate(fn, items, seconds):
    """items per second of fn(), which handles items items, called back to
    back for about seconds (at least 3 times); the median of the calls."""
    fn()  # warm up
    rates = []
    deadline = time.perf_counter() + seconds
    while len(rates) < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        rates.append(items / (time.perf_counter() - start))
    return statistics.median(rates)


def run(cfg):
    from cryptography.fernet import Fernet, MultiFernet

    out = {}
    primary, old = Fernet(cfg["primary"]), Fernet(cfg["old"])
    multi = MultiFernet([primary, old])
    plaintext = bytes.fromhex(cfg["plaintext_hex"])
    token = cfg["token"].encode("ascii")
    tokens = [t.encode("ascii") for t in cfg["old_tokens"]]
    seconds = cfg["seconds"]

    # cryptography in process.
    assert multi.decrypt(token) == plaintext
    assert multi.decrypt(multi.rotate(tokens[0])) == plaintext
    out["py_encrypt_us"] = per_call_us(lambda: primary.encrypt(plaintext), 2000)
    out["py_decrypt_us"] = per_call_us(lambda: multi.decrypt(token), 2000)
    out["py_rotate_us"] = per_call_us(lambda: multi.rotate(tokens[0]), 2000)

    def rotate_all():
        for t in tokens:
            multi.rotate(t)

    out["py_rotate_per_s"] = rate(rotate_all, len(tokens), seconds)

    # The Python client, and the bare stub.
    client, why = import_client(cfg["client_path"])
    if client is None:
        out["client_error"] = why
        return out
    SidecarFernet, pb, pb_grpc = client
    import grpc

    f = SidecarFernet(cfg["sidecar"])
    try:
        rotated = f.rotate_many(tokens)
        if len(rotated) != len(tokens) or multi.decrypt(rotated[0]) != plaintext or rotated[0] == tokens[0]:
            raise AssertionError("rotate_many gave a wrong answer")
        if f.decrypt(token) != plaintext:
            raise AssertionError("decrypt gave a wrong answer")
        out["client_rotate_many_per_s"] = rate(lambda: f.rotate_many(tokens), len(tokens), seconds)

        f_nodeadline = SidecarFernet(cfg["sidecar"], timeout=None)
        echo_channel = grpc.insecure_channel(cfg["echo"])
        sidecar_channel = grpc.insecure_channel(cfg["sidecar"])
        try:
            echo = pb_grpc.FernetServiceStub(echo_channel)
            bare = pb_grpc.FernetServiceStub(sidecar_channel)
            request = pb.DecryptRequest(token=cfg["token"])
            calls = {
                "client_decrypt": lambda: f.decrypt(token),
                # Without the client's default deadline.
                "client_nodeadline_decrypt": lambda: f_nodeadline.decrypt(token),
                "bare_echo_decrypt": lambda: echo.Decrypt(request),
                "bare_sidecar_decrypt": lambda: bare.Decrypt(request),
                # What a per-call deadline costs grpcio.
                "bare_echo_deadline_decrypt": lambda: echo.Decrypt(request, timeout=5.0),
            }
            latencies = {name: [] for name in calls}
            for fn in calls.values():  # warm up every channel
                for _ in range(50):
                    fn()
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline or len(latencies["client_decrypt"]) < 600:
                for name, fn in calls.items():
                    lat = latencies[name]
                    for _ in range(100):
                        start = time.perf_counter()
                        fn()
                        lat.append(time.perf_counter() - start)
            for name, lat in latencies.items():
                out[name + "_p50_us"] = statistics.median(lat) * 1e6
        finally:
            echo_channel.close()
            sidecar_channel.close()
            f_nodeadline.close()
    finally:
        f.close()
    return out


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "probe":
        out = versions()
        _, why = import_client(sys.argv[2])
        if why:
            out["client_error"] = why
        json.dump(out, sys.stdout)
    elif sys.argv[1:] == ["run"]:
        json.dump(run(json.load(sys.stdin)), sys.stdout)
    else:
        sys.exit("usage: pybench.py probe CLIENT_PATH | run < cfg.json")


if __name__ == "__main__":
    main()
