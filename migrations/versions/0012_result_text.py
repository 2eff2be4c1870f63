"""The result's people as text made by PostgreSQL: ``pose_person_text`` writes one person of result@1
(DESIGN.md section 5) as JSON text from its ``pose_frame_rows`` row, so the result route only joins
the people of a frame instead of regrouping every number of every point in Python (which cost the web
more CPU per MB than PostgreSQL spent formatting them).

``pose_points_text(values, size)`` is ``a,b,c,...`` grouped into points of ``size``: ``[a,b,c],[...]``,
each number PostgreSQL's shortest exact text of the stored real (what ``array_to_string`` prints).
The shapes the pose pipeline stores (33 keypoints × 5, 33 world points × 3) take one ``format()`` per
point over array subscripts (the cheapest grouped form measured: one format() of 99 values, or
regexp_replace over ``array_to_string``, cost more; PostgreSQL spends about twice the CPU of plain
``array_to_string`` text on it, which the web no longer spends); any other shape, or an array with
NULLs, takes the general path
(``pose_points_text_any``: NULLs left out, a shorter last point), which prints the same text slower.
Both functions are plain SQL and STABLE (``format`` and the float output are), so the planner inlines
them into the query that calls them.

Revision ID: 0012_result_text
Revises: 0011_analyses
Create Date: 2026-12-02
"""

from alembic import op

revision = "0012_result_text"
down_revision = "0011_analyses"
branch_labels = None
depends_on = None

#: Shapes with a fast path: (values per point, points); the numbers are only what makes the fast path
#: apply, other shapes print the same text through the general path.
FAST_SHAPES = ((5, 33), (3, 33))


def _points_format(size: int, points: int) -> str:
    """One format() per point over subscripts of ``v``, joined with commas."""
    point = "'[" + ",".join(["%s"] * size) + "]'"
    return " || ',' || ".join(
        f"format({point}, " + ", ".join(f"v[{p * size + i + 1}]" for i in range(size)) + ")" for p in range(points))


FAST_CASES = "\n".join(
    f"    WHEN size = {size} AND cardinality(v) = {size * points} AND array_position(v, NULL) IS NULL\n"
    f"        THEN {_points_format(size, points)}" for size, points in FAST_SHAPES)

UPGRADE = f"""
CREATE FUNCTION pose_points_text_any(v real[], size integer)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT COALESCE(string_agg('[' || array_to_string(w.vals[i:i + size - 1], ',') || ']', ',' ORDER BY i), '')
FROM (SELECT array_remove(v, NULL) AS vals) AS w,
     generate_series(1, cardinality(w.vals), GREATEST(size, 1)) AS i
$$;

CREATE FUNCTION pose_points_text(v real[], size integer)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT CASE
{FAST_CASES}
    ELSE pose_points_text_any(v, size)
END
$$;

-- One person of result@1 as JSON text: the fields a backend adds (extra, a jsonb object) follow the
-- pose fields, as they do in the documents the pipeline writes.
CREATE FUNCTION pose_person_text(track_id integer, bbox real[], score real, keypoints real[], world real[],
                                 extra jsonb)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT '{{"track_id":' || track_id || ',"bbox":[' || COALESCE(array_to_string(bbox, ','), '')
       || '],"score":' || COALESCE(score::text, 'null')
       || ',"keypoints":[' || COALESCE(pose_points_text(keypoints, 5), '')
       || '],"world":[' || COALESCE(pose_points_text(world, 3), '') || ']'
       || COALESCE(',' || NULLIF(substr(extra::text, 2, length(extra::text) - 2), ''), '') || '}}'
$$;
"""

DOWNGRADE = """
DROP FUNCTION pose_person_text(integer, real[], real, real[], real[], jsonb);
DROP FUNCTION pose_points_text(real[], integer);
DROP FUNCTION pose_points_text_any(real[], integer);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
