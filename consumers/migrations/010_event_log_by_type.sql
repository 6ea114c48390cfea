-- A revision rebuilds only the rows its events write (consumers.store._rebuild_rows): an entity's own row from the
-- few events of the types that write it (a fair's scheduling and closing, not its 100,000 check-ins), a member's
-- rows from the events of its type naming it. The entity's events of some types are found through this index
-- (before, through (family, subject) alone, which read every event of the entity and filtered them). It serves the
-- queries by (family, subject) as the old one did, so that one goes (an index less to write per event).
CREATE INDEX event_log_entity_type ON event_log (family, subject, type);
DROP INDEX event_log_entity;
