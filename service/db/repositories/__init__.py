"""Repositories: every query of the service lives in these modules.

- `feedback`: accept feedback idempotently, read an item with its analysis and history.
- `analyses`: store a finished analysis (result + status + job done in one transaction).
- `jobs`: the durable job queue (enqueue, claim, renew, finish, fail, due_jobs, claim_next).
- `status`: status events and subject status changes.
- `intake`: idempotent insert of a subject with its "queued" event and first job.
- `api_keys`: hashed API keys.
"""

from service.db.repositories import analyses, api_keys, feedback, jobs, status

__all__ = ["analyses", "api_keys", "feedback", "jobs", "status"]
