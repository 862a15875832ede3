"""A synced app with file fields (attachments, issue 16): an app of its own, so its
migrations do not change the schema states the schema tests count for test_app."""
