"""pyarrow's Google Cloud Storage and Azure Blob clients, configured from each cloud's own
environment variables (#18), as its SDK reads them.

- `gs://bucket/prefix`: the application-default credentials (GOOGLE_APPLICATION_CREDENTIALS, the
  gcloud login, a VM's service account), or, with STORAGE_EMULATOR_HOST set (as the Google SDKs
  honour it), that server with no credentials.
- `az://container/prefix`: AZURE_STORAGE_CONNECTION_STRING (AccountName, AccountKey,
  BlobEndpoint, or `UseDevelopmentStorage=true` for the Azurite emulator), else
  AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or the default Azure credential chain.

Both are tested against real emulators (gcp-storage-emulator, Azurite) in
tests/store/test_remote_clouds.py. A remote store needs only list, get, put and delete, so an
Azure account without a hierarchical namespace (where pyarrow cannot move a blob) serves as well.
"""

from __future__ import annotations

import datetime
import os
from typing import TYPE_CHECKING, Any

from logbook.errors import ConfigError

if TYPE_CHECKING:
    from pyarrow import fs as pafs

# Azurite's documented well-known development account (not a secret: it is in Microsoft's docs).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURITE_BLOB = "http://127.0.0.1:10000/devstoreaccount1"
# What to check when a store does not answer, by scheme: each cloud's own variables.
SETTINGS = {
    "s3": "the endpoint (AWS_ENDPOINT_URL) and the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE)",
    "gs": "the credentials (GOOGLE_APPLICATION_CREDENTIALS) or STORAGE_EMULATOR_HOST",
    "az": "AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME and its key",
}


def gcs(request_timeout_s: float) -> pafs.FileSystem:
    from pyarrow import fs as pafs

    # pyarrow wants a timedelta here: a plain number raises at construction.
    options: dict[str, Any] = {"retry_time_limit": datetime.timedelta(seconds=request_timeout_s)}
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "").strip()
    if emulator:
        scheme, sep, host = emulator.rpartition("://")
        options.update(
            anonymous=True, endpoint_override=host.rstrip("/"), scheme=scheme if sep else "http"
        )
    return pafs.GcsFileSystem(**options)


def _connection_string(text: str) -> dict[str, str]:
    """`Key=Value;Key=Value` as Azure writes it (a value may hold `=`, as a base64 key does)."""
    fields: dict[str, str] = {}
    for item in text.split(";"):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            fields[key.strip()] = value.strip()
    return fields


def _endpoint(url: str, prefix: str) -> dict[str, str]:
    """pyarrow's authority and scheme options for a blob endpoint URL. An endpoint with the
    account in its path (Azurite's, `http://host:port/account`) is what pyarrow calls an
    emulator: it puts the account in the path itself when the authority is not the cloud's."""
    scheme, _, rest = url.rpartition("://")
    authority = rest.split("/", 1)[0]
    return {f"{prefix}_storage_authority": authority, f"{prefix}_storage_scheme": scheme or "https"}


def azure() -> pafs.FileSystem:
    from pyarrow import fs as pafs

    options: dict[str, Any] = {}
    conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "").strip()
    if conn:
        fields = _connection_string(conn)
        if fields.get("UseDevelopmentStorage", "").lower() == "true":
            fields = {
                "AccountName": AZURITE_ACCOUNT,
                "AccountKey": AZURITE_KEY,
                "BlobEndpoint": fields.get("DevelopmentStorageProxyUri") or AZURITE_BLOB,
            }
        if "AccountName" not in fields:
            raise ConfigError(
                "AZURE_STORAGE_CONNECTION_STRING has no AccountName=",
                hint="use the connection string the Azure portal gives for the storage account",
            )
        options["account_name"] = fields["AccountName"]
        if fields.get("AccountKey"):
            options["account_key"] = fields["AccountKey"]
        if fields.get("BlobEndpoint"):
            # The DFS endpoint is asked only whether the account has a hierarchical namespace;
            # the blob endpoint answers that as well (no, for Azurite).
            for prefix in ("blob", "dfs"):
                options.update(_endpoint(fields["BlobEndpoint"], prefix))
        elif fields.get("EndpointSuffix"):
            suffix, scheme = (
                fields["EndpointSuffix"],
                fields.get("DefaultEndpointsProtocol", "https"),
            )
            for prefix in ("blob", "dfs"):
                options[f"{prefix}_storage_authority"] = f"{prefix}.{suffix}"
                options[f"{prefix}_storage_scheme"] = scheme
    else:
        account = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME", "").strip()
        if not account:
            raise ConfigError(
                "az:// needs a storage account",
                hint="set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME "
                "(with AZURE_STORAGE_ACCOUNT_KEY, or an Azure login for the default credential)",
            )
        options["account_name"] = account
        if os.environ.get("AZURE_STORAGE_ACCOUNT_KEY"):
            options["account_key"] = os.environ["AZURE_STORAGE_ACCOUNT_KEY"]
    return pafs.AzureFileSystem(**options)
