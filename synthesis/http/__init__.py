"""HTTP-only helpers the web UI and the API share: serving stored files with byte ranges, and streaming a
job's audio as its segments finish. Nothing below the web edges imports this package."""
