"""Operations on a whole pool: push work, list/reset/delete tokens, status, scrub, the pilot-job registry."""
