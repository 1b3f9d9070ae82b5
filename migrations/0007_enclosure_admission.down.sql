ALTER TABLE session_devices DROP COLUMN live_last, DROP COLUMN live_base;
ALTER TABLE devices DROP COLUMN retired_at, DROP COLUMN admission, DROP COLUMN registered_from,
    DROP COLUMN bound_address, DROP COLUMN relayed;
