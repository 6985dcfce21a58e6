"""Conditional requests to S3: PUT with `If-None-Match: *`, which the store refuses (412) when the
object exists, so of several hosts creating one key at once exactly one wins (#18: label claims);
and, for the lease of a remote compaction (store/remote_compact.py), a GET that reads an object's
ETag, a PUT with `If-Match: <etag>` (replace it only as it was read) and a DELETE with it.

pyarrow's S3 client (the store's, store/remote.py) cannot send that header, and boto3 is no
dependency of logbook, so this is one request signed here (AWS Signature Version 4, standard
library only). Credentials: the AWS variables, else botocore's chain (profiles, roles) when it is
installed. The answer is True (created), False (it existed) or None (no answer we can trust: no
credentials, the network, a server that refuses the header); the caller then goes on as before.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import os
import time
import urllib.parse
from datetime import datetime, timezone

TIMEOUT_S = 1.0  # a claim is on the wrapper's way to the training's start
REQUEST_S = 10.0  # a compaction's lease is on nobody's way


def put_if_absent(url: str, rel: str, body: bytes) -> bool | None:
    """Create the object `rel` under the store `url` (s3://bucket/prefix) unless it exists.

    Returns:
        True if this call created it, False if it was there already, None if it cannot tell.
    """
    for _ in range(3):
        answer = request(url, rel, "PUT", body, {"if-none-match": "*"}, timeout_s=TIMEOUT_S)
        if answer is None:
            return None
        if answer[0] == 200:
            return True
        if answer[0] == 412:
            return False
        if answer[0] != 409:
            return None
        time.sleep(0.05)  # another conditional write of this key is in flight: it will win
    return False


def _target(url: str, rel: str) -> tuple[str, str, str, tuple[str, str, str | None]] | None:
    """(bucket, key, region, credentials) of `rel` under the store `url`; None if not s3:// or
    without credentials."""
    scheme, _, rest = url.partition("://")
    bucket, _, prefix = rest.partition("/")
    if scheme != "s3" or not bucket:
        return None
    creds = _credentials()
    if creds is None:
        return None
    key = f"{prefix}/{rel}" if prefix else rel
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return bucket, key, region, creds


def _credentials() -> tuple[str, str, str | None] | None:
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        return key, secret, os.environ.get("AWS_SESSION_TOKEN")
    try:  # profiles, SSO, instance and pod roles: where botocore is installed
        import botocore.session

        found = botocore.session.Session(profile=os.environ.get("AWS_PROFILE")).get_credentials()
        if found is None:
            return None
        frozen = found.get_frozen_credentials()
        return frozen.access_key, frozen.secret_key, frozen.token
    except Exception:
        return None


def request(
    url: str,
    rel: str,
    method: str,
    body: bytes = b"",
    conditions: dict[str, str] | None = None,
    *,
    timeout_s: float = REQUEST_S,
) -> tuple[int, dict[str, str], bytes] | None:
    """One signed request for the object `rel` under the store `url` (s3://bucket/prefix).

    Args:
        conditions: headers such as `if-match` (lower case), signed with the request.

    Returns:
        (status, headers in lower case, body), or None where it cannot be sent (not s3://, no
        credentials, no answer).
    """
    target = _target(url, rel)
    if target is None:
        return None
    bucket, key, region, creds = target
    for _ in range(2):
        try:
            answer = _send(method, bucket, key, body, region, creds, conditions or {}, timeout_s)
        except (OSError, http.client.HTTPException):
            return None
        moved = answer[1].get("x-amz-bucket-region")
        if answer[0] in (301, 400) and moved and moved != region:
            region = moved  # the bucket lives in another region than the one configured
            continue
        return answer
    return None


def _send(
    method: str,
    bucket: str,
    key: str,
    body: bytes,
    region: str,
    creds: tuple[str, str, str | None],
    conditions: dict[str, str],
    timeout_s: float = TIMEOUT_S,
) -> tuple[int, dict[str, str], bytes]:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    quoted = urllib.parse.quote(key, safe="/-_.~")
    if endpoint:  # another server (MinIO, a gateway, moto): path-style, as pyarrow's client does
        parsed = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        secure, host = parsed.scheme == "https", parsed.netloc
        path = f"{parsed.path.rstrip('/')}/{bucket}/{quoted}"
    elif "." in bucket:  # a dotted bucket breaks the TLS name of the virtual host
        secure, host, path = True, f"s3.{region}.amazonaws.com", f"/{bucket}/{quoted}"
    else:
        secure, host, path = True, f"{bucket}.s3.{region}.amazonaws.com", f"/{quoted}"
    headers = _signed(method, host, path, body, region, creds, conditions)
    conn_type = http.client.HTTPSConnection if secure else http.client.HTTPConnection
    conn = conn_type(host, timeout=timeout_s)
    try:
        conn.request(method, path, body=body if method == "PUT" else None, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def _signed(
    method: str,
    host: str,
    path: str,
    body: bytes,
    region: str,
    creds: tuple[str, str, str | None],
    conditions: dict[str, str],
) -> dict[str, str]:
    """The request's headers with its AWS Signature Version 4 (the header form)."""
    access, secret, token = creds
    now = datetime.now(timezone.utc)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {
        "host": host,
        **conditions,
        "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
        "x-amz-date": stamp,
    }
    if token:
        headers["x-amz-security-token"] = token
    names = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            path,
            "",
            *(f"{k}:{headers[k].strip()}" for k in sorted(headers)),
            "",
            names,
            headers["x-amz-content-sha256"],
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    signing = f"AWS4{secret}".encode()
    for part in (day, region, "s3", "aws4_request"):
        signing = hmac.new(signing, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={names}, "
        f"Signature={signature}"
    )
    return headers
