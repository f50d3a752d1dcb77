"""A local OpenText DAM, split by resource (shapes, auth and paging, assets, collections, review tasks, the
usage log and people at work):  OAuth2 client credentials under /tenants/{tenant}/oauth2/token, then resources
in the OTMM REST v6 shape under /otmmapi/v6 (assets with nested metadata, offset paging with after/limit,
search conditions, lock → metadata update → unlock, asynchronous jobs, folders, collections, policies).

Conventions where the public record is silent, each named once here:
- approval state lives in metadata fields CONSODAM.FIELD.APPROVAL_* with a tabular history;
- every version is its own asset id sharing `original_asset_id`; `versions=all` lists them all;
- modified-since search is a condition on ARTESIA.FIELD.DATE LAST MODIFIED with operator IS AFTER;
- new versions are POSTed to /assets/{id}/versions (OTMM uses an import-job dance);
- jobs complete on the first poll at least `job_seconds` after creation;
- review tasks live under /otmmapi/v6/reviewtasks: `kind` "review" (a milestone asks reviewers to decide on
  one asset version; the decision is the version's approval) or "request" (a milestone needs an asset that
  is missing or unusable); one task per natural key (asset and milestone, or ISBN, milestone and
  requirement): creating it again reopens it; PUT sets its status (consodam cancels moot ones);
- rendition facts (pixel size, colour space, file size, page count, duration) are metadata fields
  CONSODAM.FIELD.WIDTH_PX, HEIGHT_PX, COLOUR_SPACE, FILE_SIZE, PAGE_COUNT, DURATION_S;
- paging offsets count deleted assets (tombstones), so deletions never shift later pages;
- an import job (POST /assets) or a new version (POST /assets/{id}/versions) may carry the file itself as
  `content` (text, e.g. an ONIX title sheet) and other metadata fields; GET /assets/{id}/contents returns it;
- collection membership: PUT /collections/{id}/assets adds (`{"asset_ids": […]}`), DELETE
  /collections/{id}/assets/{asset_id} removes one;
- the usage log (downloads and deliveries of a version, by a user or a channel) is read with
  GET /otmmapi/v6/usage?after=<seq>&limit=<n>, in the order it happened.
"""
