-- Blocks of a unit that overlap a stay are those ending after its arrival
-- and starting before its departure. Led by the start date, the index scans
-- every earlier block of the unit (years of history) to find the few that
-- end late enough; led by the end date, it reads only blocks still running
-- at the arrival, which stays small however much history a unit holds.
-- Found by the benchmark with many bookings per unit (docs/benchmarks.md).
DROP INDEX availability_blocks_unit_dates;
CREATE INDEX availability_blocks_unit_end ON availability_blocks (unit_id, end_date, start_date);
