//! Connected groups of set cells on a grid (a page cut into cells: ink, tint, pictures, a code's
//! modules), found once here for every caller that needs their sizes and boxes.

/// How far apart two set cells may be and still belong to one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// Sharing an edge (4-connected).
    ByEdge,
    /// Within this many cells on each axis (a square neighbourhood: 1 is 8-connected, 2 bridges
    /// one missing cell).
    Within(usize),
}

/// One group: its bounding box in cells (inclusive) and how many cells it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
    pub cells: usize,
}

impl Component {
    /// Share of its bounding box the group fills.
    pub fn fill(&self) -> f32 {
        self.cells as f32 / ((self.x1 - self.x0 + 1) * (self.y1 - self.y0 + 1)) as f32
    }
}

/// The groups of the `w` × `h` grid's set cells, in the order their first cell comes in reading
/// order, and for each cell the index of its group (`u32::MAX` for an unset cell).
pub fn components(cells: &[bool], w: usize, h: usize, joined: Joined) -> (Vec<Component>, Vec<u32>) {
    let mut label = vec![u32::MAX; cells.len()];
    let mut groups = Vec::new();
    if w == 0 || h == 0 {
        return (groups, label);
    }
    let reach = match joined {
        Joined::ByEdge => 1,
        Joined::Within(r) => r as i64,
    };
    let mut stack = Vec::new();
    for start in 0..cells.len().min(w * h) {
        if !cells[start] || label[start] != u32::MAX {
            continue;
        }
        let id = groups.len() as u32;
        label[start] = id;
        stack.push(start);
        let mut g = Component { x0: start % w, y0: start / w, x1: start % w, y1: start / w, cells: 0 };
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            (g.x0, g.y0, g.x1, g.y1, g.cells) = (g.x0.min(x), g.y0.min(y), g.x1.max(x), g.y1.max(y), g.cells + 1);
            for dy in -reach..=reach {
                for dx in -reach..=reach {
                    if joined == Joined::ByEdge && dx != 0 && dy != 0 {
                        continue;
                    }
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if cells[j] && label[j] == u32::MAX {
                        label[j] = id;
                        stack.push(j);
                    }
                }
            }
        }
        groups.push(g);
    }
    (groups, label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_join_by_edge_or_across_a_gap() {
        // Two cells touching at a corner, and a third one cell away.
        let (w, h) = (6, 3);
        let mut cells = vec![false; w * h];
        for (x, y) in [(0, 0), (1, 1), (3, 1)] {
            cells[y * w + x] = true;
        }
        let (by_edge, labels) = components(&cells, w, h, Joined::ByEdge);
        assert_eq!(by_edge.len(), 3);
        assert_eq!((labels[0], labels[w + 1], labels[1]), (0, 1, u32::MAX));
        let (within1, _) = components(&cells, w, h, Joined::Within(1));
        assert_eq!(within1.iter().map(|g| g.cells).collect::<Vec<_>>(), vec![2, 1]);
        let (within2, _) = components(&cells, w, h, Joined::Within(2));
        assert_eq!(within2, vec![Component { x0: 0, y0: 0, x1: 3, y1: 1, cells: 3 }]);
        assert!((within2[0].fill() - 3.0 / 8.0).abs() < 1e-6);
    }
}
