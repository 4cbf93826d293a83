-- Read and compare TIMESTAMP columns as UTC on this connection (MySQL, MariaDB).
-- A TIMESTAMP column stores an instant and converts it from and to the session's time_zone, which is
-- the server's SYSTEM zone unless set; fixed at UTC, its values and our bound UTC times mean the same
-- instant. DATETIME columns are not converted (they are naive: warehouse.naive_timestamps_are).
-- A numeric offset needs no time zone tables on the server. Inputs: none. Output: none. Idempotent.
SET time_zone = '+00:00'
