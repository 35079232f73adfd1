//! Streams in ascending order: a set read from the index a row at a time is merged, never
//! gathered and sorted.

/// The items of two ascending streams, in ascending order (an item in both comes twice).
pub fn merge<T: Ord>(
    a: impl Iterator<Item = T>,
    b: impl Iterator<Item = T>,
) -> impl Iterator<Item = T> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if y < x => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

#[cfg(test)]
mod tests {
    use super::merge;

    #[test]
    fn merging_two_ascending_streams_gives_one() {
        let merged: Vec<u32> =
            merge([1, 4, 5, 9].into_iter(), [0, 2, 3, 5, 10, 11].into_iter()).collect();
        assert_eq!(merged, [0, 1, 2, 3, 4, 5, 5, 9, 10, 11]);
        assert_eq!(merge([1, 2].into_iter(), [].into_iter()).count(), 2);
        assert_eq!(
            merge([].into_iter(), [7].into_iter()).collect::<Vec<u32>>(),
            [7]
        );
    }
}
