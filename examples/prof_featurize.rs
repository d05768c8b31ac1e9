//! Profiling driver: featurize and encode synthetic short documents (for callgrind).
use _core::surrogate::{encode, featurize_batch, Config, Method};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let mode = std::env::args().nth(2).unwrap_or_else(|| "encode".into());
    // Short review-like documents: pseudo-words of 1-10 letters from a Zipf-ish vocabulary of 5,000,
    // some capitalised, with punctuation; one document in 50 has a non-ASCII word.
    let mut s = 1u64;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s >> 33
    };
    let syll = [
        "th", "e", "an", "mo", "vie", "re", "al", "ly", "gr", "ea", "t", "pl", "ot", "in", "s",
        "ing", "o", "u", "ch", "ar",
    ];
    let vocab: Vec<String> = (0..5000)
        .map(|i| {
            let k = 1 + (i % 4);
            let mut w: String = (0..k)
                .map(|j| syll[(i * 7 + j * 13 + i / 20) % syll.len()])
                .collect();
            if i % 17 == 0 {
                w = w[..1].to_uppercase() + &w[1..];
            }
            w
        })
        .collect();
    let texts: Vec<String> = (0..n)
        .map(|d| {
            let k = 8 + (next() % 16) as usize;
            let mut t: Vec<String> = (0..k)
                .map(|_| {
                    let r = next() % 1_000_000;
                    let idx = ((r * r) / 200_000_000) as usize % vocab.len(); // skewed to small ids
                    let mut w = vocab[idx].clone();
                    if next() % 10 == 0 {
                        w.push(',');
                    }
                    w
                })
                .collect();
            if d % 50 == 0 {
                t.push("café".into());
            }
            t.join(" ") + "."
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let cfg = Config::new(256, 4096, 0, 20, 1.0, Method::Operator).unwrap();
    let mut acc = 0.0f64;
    if mode == "none" {
    } else if mode == "encode" {
        let out = encode(&refs, None, 0, &cfg, 1).unwrap();
        acc += out.iter().map(|v| f64::from(*v)).sum::<f64>();
    } else {
        let (_, idx, _) = featurize_batch(&refs, None, 0, 20, 1).unwrap();
        acc += idx.len() as f64;
    }
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    println!("{n} texts, {bytes} bytes, checksum {acc}");
}
