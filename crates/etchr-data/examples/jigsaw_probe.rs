use etchr_data::{generate, Family};
fn main() {
    let n: u64 = std::env::args().nth(1).map_or(6, |s| s.parse().unwrap());
    let mut ok = 0;
    for i in 0..n {
        let (it, img) = generate(Family::Jigsaw, 3, i);
        let rows = it.meta["rows"].as_u64().unwrap() as u32;
        let cols = it.meta["cols"].as_u64().unwrap() as u32;
        let order: Vec<u32> = serde_json::from_value(it.meta["order"].clone()).unwrap();
        let t = std::time::Instant::now();
        let found = etchr_ops::render::jigsaw_solve(&img, rows, cols);
        let inv = etchr_ops::render::jigsaw_inverse(&order);
        let correct = found.iter().zip(&inv).filter(|(a, b)| a == b).count();
        ok += (correct == inv.len()) as u32;
        if std::env::var("DUMP").is_ok() && i == 8 {
            let small = |im: &image::RgbImage| {
                image::imageops::resize(
                    im,
                    im.width() / 4,
                    im.height() / 4,
                    image::imageops::FilterType::Triangle,
                )
            };
            small(&img).save("/tmp/jig_shuffled.png").unwrap();
            small(&etchr_ops::render::jigsaw_permute(&img, rows, cols, &found))
                .save("/tmp/jig_solved.png")
                .unwrap();
            small(&etchr_ops::render::jigsaw_permute(&img, rows, cols, &inv))
                .save("/tmp/jig_true.png")
                .unwrap();
        }
        if inv.len() <= 16 {
            println!("found {found:?} inv {inv:?} order {order:?}");
        }
        println!(
            "{} {}x{} {}x{} correct {}/{} in {:.2}s",
            it.id,
            it.width,
            it.height,
            rows,
            cols,
            correct,
            inv.len(),
            t.elapsed().as_secs_f64()
        );
    }
    println!("solved {ok}/{n}");
}

#[allow(dead_code)]
fn dump() {}
