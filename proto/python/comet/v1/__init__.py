"""Generated wire contract (package comet.v1). Regenerate with proto/generate."""
