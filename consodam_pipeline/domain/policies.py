"""The DAM's security policies consodam sets on a version (see /otmmapi/v6/securitypolicies): Public when it
may be seen and downloaded now, Embargoed before its window opens, Internal otherwise."""

INTERNAL, PUBLIC, EMBARGOED = 1, 2, 3
SECURITY_POLICIES = {INTERNAL: "Internal", PUBLIC: "Public", EMBARGOED: "Embargoed"}
