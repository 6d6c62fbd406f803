"""Checkpoint locations: a URI's query string stays at the end, a bad one is one line, and the log works on an S3-compatible server."""

from __future__ import annotations

import pytest

from compound.curation.errors import CurationError
from compound.distributed.checkpoint import location
from compound.distributed.checkpoint.op_log import Op, OpLog
from compound.types import Trajectory
from tests.distributed.s3_server import s3_bucket


def test_a_folder_goes_into_the_path_before_the_query_string():
    uri = "s3://bucket/run?endpoint_override=127.0.0.1:9000&scheme=http&region=us-east-1"
    assert location.join(uri, "r-1") == "s3://bucket/run/r-1?endpoint_override=127.0.0.1:9000&scheme=http&region=us-east-1"
    assert location.join("/data/ckpt", "r-1") == "/data/ckpt/r-1"


@pytest.mark.parametrize("uri", ["nosuch://bucket/x", "s3://bucket/x?endpoint_override=127.0.0.1:1&scheme=http&region=us-east-1"
                                                       "&connect_timeout=1&request_timeout=1"])
def test_a_location_that_cannot_be_used_is_one_line(uri, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(CurationError) as err:
        location.check(uri)
    message = str(err.value)
    assert "\n" not in message and "distributed.checkpoint_uri" in message and "endpoint_override" in message


def test_the_log_records_and_replays_on_an_s3_compatible_server():
    with s3_bucket() as bucket:
        uri = location.join(bucket, "ckpt")  # s3://runs/ckpt?endpoint_override=...
        location.check(uri)
        log = OpLog(uri, run="r")
        t = Trajectory("a", "toy", "1", "train", "g", "", "", (), False, True, False)
        log.append(Op("submit_many", {"op_id": "x"}, (t,)))
        log.append_many([])  # nothing: a record of no calls is not written
        again = OpLog(uri, run="r")
        assert again.next == 1 and [op.trajectories for op in again.replay()] == [(t,)]
        assert "?" not in again.uri, "a URI's query string (it may hold credentials) is never shown"
