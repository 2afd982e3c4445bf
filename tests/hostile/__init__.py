"""The hostile-input suite (issue 7, point 2): property and fuzz tests over every parser and
verifier, and hostile calls to live nodes. Each case is refused with its error class (or a
gRPC status with details, or exit 2/3 and one ``error:`` line), changes nothing but the
audit log, and leaves the node serving. ``TRUSTSPACE_FUZZ_SCALE=20`` runs every property
with twenty times its examples, for a deeper hunt than ``make test`` affords.
"""
