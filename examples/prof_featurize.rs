//! Profiling driver: featurize and encode synthetic short documents (for callgrind).
use _core::surrogate::{encode, featurize_batch, Config, Method};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let mode = std::env::args().nth(2).unwrap_or_else(|| "encode".into());
    let words = [
        "the", "movie", "was", "great", "really", "bad", "plot", "Acting,", "über", "naïve",
        "film!", "café", "2024", "an", "of", "and",
    ];
    let mut s = 1u64;
    let texts: Vec<String> = (0..n)
        .map(|_| {
            let k = 8 + (s % 12) as usize;
            (0..k)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    words[(s >> 33) as usize % words.len()]
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let cfg = Config::new(256, 4096, 0, 20, 1.0, Method::Operator).unwrap();
    let mut acc = 0.0f64;
    if mode == "encode" {
        let out = encode(&refs, None, 0, &cfg, 1).unwrap();
        acc += out.iter().map(|v| f64::from(*v)).sum::<f64>();
    } else {
        let (_, idx, _) = featurize_batch(&refs, None, 0, 20, 1).unwrap();
        acc += idx.len() as f64;
    }
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    println!("{n} texts, {bytes} bytes, checksum {acc}");
}
