"""Where the local sandboxes listen and the credentials they accept: the one definition both the
clients (as their defaults) and the sandboxes (as what they serve) read."""

CONSONANCE_PORT = 8701
DAM_PORT = 8702
CONSONANCE_URL = f"http://127.0.0.1:{CONSONANCE_PORT}"
CONSONANCE_KEY = "sandboxconsonancekey0000000000001"
DAM_URL = f"http://127.0.0.1:{DAM_PORT}"
DAM_TENANT = "sandbox-tenant"
DAM_CLIENT_ID = "consodam-sandbox-client"
DAM_CLIENT_SECRET = "sandbox-dam-secret"
