fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let out = dir.join("prev");
    std::fs::create_dir_all(&out).unwrap();
    for item in etchr_data::read_set(&dir).unwrap() {
        let img = image::open(dir.join(&item.image)).unwrap().to_rgb8();
        let s = 1024.0 / img.width().max(img.height()) as f64;
        let small = image::imageops::resize(
            &img,
            (img.width() as f64 * s) as u32,
            (img.height() as f64 * s) as u32,
            image::imageops::FilterType::CatmullRom,
        );
        small.save(out.join(format!("{}.png", item.id))).unwrap();
    }
}
