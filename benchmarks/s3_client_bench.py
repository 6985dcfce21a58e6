"""Which S3 client logbook uses: import time, first request, PUT/LIST/GET of small parts (#18).

Against moto's standalone server on localhost (start-up and per-request cost, not bandwidth):

    python benchmarks/s3_client_bench.py            # starts moto on a free port, stops it after
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

N = 100
BODY = os.urandom(4096)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _timed_import(module: str) -> float:
    code = f"import time; t=time.perf_counter(); import {module}; print(time.perf_counter()-t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout)


def bench_pyarrow(endpoint: str, bucket: str) -> dict[str, float]:
    from pyarrow import fs

    t = time.perf_counter()
    s3 = fs.S3FileSystem(
        endpoint_override=endpoint, scheme="http", region="us-east-1", allow_delayed_open=True
    )
    s3.get_file_info(f"{bucket}/none")
    first = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(N):
        with s3.open_output_stream(f"{bucket}/pa/p{i}.parquet") as f:
            f.write(BODY)
    put = time.perf_counter() - t
    t = time.perf_counter()
    infos = s3.get_file_info(fs.FileSelector(f"{bucket}/pa", recursive=True))
    lst = time.perf_counter() - t
    t = time.perf_counter()
    for info in infos:
        with s3.open_input_stream(info.path) as f:
            f.read()
    get = time.perf_counter() - t
    return {"first request": first, "put": put, "list": lst, "get": get}


def bench_s3fs(endpoint: str, bucket: str) -> dict[str, float]:
    import s3fs

    t = time.perf_counter()
    s3 = s3fs.S3FileSystem(endpoint_url=endpoint)
    s3.exists(f"{bucket}/none")
    first = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(N):
        s3.pipe(f"{bucket}/fs/p{i}.parquet", BODY)
    put = time.perf_counter() - t
    t = time.perf_counter()
    names = s3.find(f"{bucket}/fs")
    lst = time.perf_counter() - t
    t = time.perf_counter()
    for name in names:
        s3.cat(name)
    get = time.perf_counter() - t
    return {"first request": first, "put": put, "list": lst, "get": get}


def bench_obstore(endpoint: str, bucket: str) -> dict[str, float]:
    import obstore
    from obstore.store import S3Store

    t = time.perf_counter()
    s3 = S3Store(bucket, endpoint=endpoint, region="us-east-1", client_options={"allow_http": True})
    list(obstore.list(s3, "none"))
    first = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(N):
        obstore.put(s3, f"ob/p{i}.parquet", BODY)
    put = time.perf_counter() - t
    t = time.perf_counter()
    names = [m["path"] for batch in obstore.list(s3, "ob") for m in batch]
    lst = time.perf_counter() - t
    t = time.perf_counter()
    for name in names:
        obstore.get(s3, name).bytes()
    get = time.perf_counter() - t
    return {"first request": first, "put": put, "list": lst, "get": get}


def main() -> None:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s", AWS_REGION="us-east-1")
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/bench", method="PUT")).read()
        for name, module, bench in (
            ("pyarrow.fs", "pyarrow.fs", bench_pyarrow),
            ("s3fs", "s3fs", bench_s3fs),
            ("obstore", "obstore", bench_obstore),
        ):
            figures = {"import": _timed_import(module), **bench(endpoint, "bench")}
            print(f"{name:11}", "  ".join(f"{k} {v * 1000:7.1f} ms" for k, v in figures.items()))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
