-- An original marked returned always says when it left and under which tracking number: the
-- register reads the two together, and a return without them would be a paper nobody can trace.
ALTER TABLE originals ADD CONSTRAINT returned_with_its_posting
    CHECK (state = 'kept' OR (returned_on IS NOT NULL AND tracking IS NOT NULL));
