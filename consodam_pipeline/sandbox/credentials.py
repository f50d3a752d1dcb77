"""The sandboxes' published endpoints and credentials (the clients' defaults point here)."""

CONSONANCE_URL = "http://127.0.0.1:8701"
CONSONANCE_KEY = "sandboxconsonancekey0000000000001"
DAM_URL = "http://127.0.0.1:8702"
DAM_TENANT = "sandbox-tenant"
DAM_CLIENT_ID = "consodam-sandbox-client"
DAM_CLIENT_SECRET = "sandbox-dam-secret"
