"""fernet_sidecar._calls, the clients' logic without I/O: how a *_many call
splits its items into RPCs and reads each RPC's results."""

import unittest

from fernet_sidecar import InvalidToken, SidecarError, _calls
from fernet_sidecar._pb import fernet_pb2 as pb


def response(*results):
    return pb.DecryptBatchResponse(results=results)


def ok(plaintext):
    return pb.DecryptBatchResult(ok=pb.DecryptResponse(plaintext=plaintext))


def error(reason):
    return pb.DecryptBatchResult(error=pb.ItemError(reason=reason, message="bad item"))


class BatchTest(unittest.TestCase):
    def test_chunks(self):
        batch = _calls.encrypt_many([b"aaa", b"bbbbb", b"c", b"dddddddddd", b"e"], False)
        cases = [
            ("by items", 2, 0, [[b"aaa", b"bbbbb"], [b"c", b"dddddddddd"], [b"e"]]),
            ("by bytes, a big item alone", 0, 8, [[b"aaa", b"bbbbb"], [b"c"], [b"dddddddddd"], [b"e"]]),
            ("by both", 2, 6, [[b"aaa"], [b"bbbbb", b"c"], [b"dddddddddd"], [b"e"]]),
            ("no limit", 0, 0, [[b"aaa", b"bbbbb", b"c", b"dddddddddd", b"e"]]),
        ]
        for name, max_items, max_bytes, want in cases:
            with self.subTest(name):
                self.assertEqual(list(batch.chunks(max_items, max_bytes)), want)
        self.assertEqual(list(_calls.rotate_many([], False).chunks(1, 1)), [])

    def test_values(self):
        chunk = ["t1", "t2", "t3"]
        results = response(ok(b"one"), error("EXPIRED"), error("PLAINTEXT_TOO_LARGE"))
        got = _calls.decrypt_many(chunk, None, True).values(chunk, results, start=10)
        self.assertEqual(got[0], b"one")
        self.assertIsInstance(got[1], InvalidToken)
        self.assertEqual((got[1].reason, got[1].index), ("EXPIRED", 11))
        self.assertNotIsInstance(got[2], InvalidToken)
        self.assertIsInstance(got[2], SidecarError)
        self.assertEqual(got[2].index, 12)
        with self.assertRaises(InvalidToken) as caught:
            _calls.decrypt_many(chunk, None, False).values(chunk, results, start=10)
        self.assertEqual(caught.exception.index, 11)
        with self.assertRaisesRegex(SidecarError, "2 results for 3 items"):
            _calls.decrypt_many(chunk, None, False).values(chunk, response(ok(b"a"), ok(b"b")), start=0)


if __name__ == "__main__":
    unittest.main()
