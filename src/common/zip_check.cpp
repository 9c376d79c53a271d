// The zip walk of archive_check.h: our own reading of a PyTorch archive's zip
// structure, made before LibTorch's reader (miniz) trusts any of it.
#include <caffe2/serialize/read_adapter_interface.h>
// zlib declares a function named compress, which clashes with our namespace;
// only inflate and crc32 are used here.
#define compress zlib_compress_unused
#include <zlib.h>
#undef compress

#include <algorithm>
#include <map>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "compress/archive_check.h"
#include "compress/error.h"
#include "record_name.h"

namespace compress {

namespace {

constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint32_t kCentralHeader = 0x02014b50;
constexpr uint32_t kEndOfCentralDir = 0x06054b50;
constexpr uint32_t kZip64EndOfCentralDir = 0x06064b50;
constexpr uint32_t kZip64Locator = 0x07064b50;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr size_t kEocdSize = 22, kCentralSize = 46, kLocalSize = 30, kZip64EocdSize = 56, kLocatorSize = 20;
// Deflate cannot expand data by more than about 1032:1 (a 258-byte match
// coded in 2 bits); a claim above that is a lie, whatever the data holds.
constexpr uint64_t kMaxDeflateRatio = 1032;

uint16_t u16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }
uint32_t u32(const uint8_t* p) { return uint32_t(u16(p)) | uint32_t(u16(p + 2)) << 16; }
uint64_t u64(const uint8_t* p) { return uint64_t(u32(p)) | uint64_t(u32(p + 4)) << 32; }

class Walker {
 public:
  Walker(const caffe2::serialize::ReadAdapterInterface& in, const std::string& what)
      : in_(in), size_(in.size()), what_(what.empty() ? "" : what + ": ") {}

  [[noreturn]] void refuse(const std::string& problem) const { bad_input(what_ + "not a valid zip archive: " + problem); }

  // `n` bytes at `pos`, all of which must lie within the file.
  std::vector<uint8_t> bytes(uint64_t pos, uint64_t n, const char* part) const {
    if (pos > size_ || n > size_ - pos) {
      refuse(std::string(part) + " at offset " + std::to_string(pos) + " (" + std::to_string(n) +
             " bytes) lies past the end of the file (" + std::to_string(size_) + " bytes)");
    }
    std::vector<uint8_t> out(static_cast<size_t>(n));
    if (n && in_.read(pos, out.data(), size_t(n), part) != n) refuse(std::string(part) + ": short read");
    return out;
  }

  std::vector<ZipEntry> walk() {
    const Directory dir = find_directory();
    const std::vector<uint8_t> cd = bytes(dir.offset, dir.size, "the central directory");
    std::vector<ZipEntry> entries;
    size_t p = 0;
    while (p < cd.size()) {
      if (entries.size() == dir.entries) refuse("the central directory holds more than the " + std::to_string(dir.entries) + " entries it claims");
      entries.push_back(central_entry(cd, p, dir.offset));
    }
    if (entries.size() != dir.entries) {
      refuse("the central directory holds " + std::to_string(entries.size()) + " entries, its end record claims " +
             std::to_string(dir.entries));
    }
    // LibTorch's reader finds records ignoring case: two names that differ
    // only in case would leave which one it reads to chance.
    std::map<std::string, std::string> seen;
    for (const ZipEntry& e : entries) {
      const auto [it, fresh] = seen.emplace(detail::record_key(e.name), e.name);
      if (!fresh) refuse("entries '" + it->second + "' and '" + e.name + "' have the same name (ignoring case)");
    }
    for (const ZipEntry& e : entries) check_data(e);
    return entries;
  }

 private:
  struct Directory {
    uint64_t entries, size, offset;
  };

  Directory find_directory() const {
    if (size_ < kEocdSize) refuse("the file is too short to hold a zip end record");
    // The end record is the last 22 bytes, unless a comment (up to 64 KiB) follows it.
    const uint64_t tail = std::min<uint64_t>(size_, kEocdSize + 0xffff);
    const std::vector<uint8_t> t = bytes(size_ - tail, tail, "the end of the file");
    int64_t at = -1;
    for (int64_t i = int64_t(tail - kEocdSize); i >= 0; --i) {
      if (u32(&t[size_t(i)]) == kEndOfCentralDir && i + kEocdSize + u16(&t[size_t(i) + 20]) <= tail) {
        at = i;
        break;
      }
    }
    if (at < 0) refuse("no end-of-central-directory record");
    const uint8_t* e = &t[size_t(at)];
    const uint64_t eocd_pos = size_ - tail + uint64_t(at);
    if (u16(e + 4) != 0 || u16(e + 6) != 0 || u16(e + 8) != u16(e + 10)) refuse("a multi-volume archive");
    Directory d{u16(e + 10), u32(e + 12), u32(e + 16)};
    const bool zip64 = d.entries == 0xffff || d.size == 0xffffffffu || d.offset == 0xffffffffu;
    uint64_t directory_end = eocd_pos;
    if (zip64) {
      if (eocd_pos < kLocatorSize) refuse("a zip64 end record without its locator");
      const std::vector<uint8_t> loc = bytes(eocd_pos - kLocatorSize, kLocatorSize, "the zip64 locator");
      if (u32(loc.data()) != kZip64Locator) refuse("a zip64 end record without its locator");
      const uint64_t z_pos = u64(&loc[8]);
      const std::vector<uint8_t> z = bytes(z_pos, kZip64EocdSize, "the zip64 end record");
      if (u32(z.data()) != kZip64EndOfCentralDir) refuse("the zip64 locator points at no zip64 end record");
      if (u32(&z[16]) != 0 || u32(&z[20]) != 0 || u64(&z[24]) != u64(&z[32])) refuse("a multi-volume archive");
      d = {u64(&z[32]), u64(&z[40]), u64(&z[48])};
      if (z_pos > eocd_pos - kLocatorSize) refuse("the zip64 end record lies after its locator");
      directory_end = z_pos;
    }
    if (d.offset > directory_end || d.size > directory_end - d.offset) {
      refuse("the central directory (offset " + std::to_string(d.offset) + ", " + std::to_string(d.size) +
             " bytes) does not end before its end record");
    }
    return d;
  }

  ZipEntry central_entry(const std::vector<uint8_t>& cd, size_t& p, uint64_t cd_offset) const {
    const auto at = [&] { return " (central directory entry at offset " + std::to_string(cd_offset + p) + ")"; };
    if (cd.size() - p < kCentralSize || u32(&cd[p]) != kCentralHeader) refuse("a damaged central directory entry" + at());
    const uint8_t* h = &cd[p];
    const size_t name_len = u16(h + 28), extra_len = u16(h + 30), comment_len = u16(h + 32);
    if (cd.size() - p - kCentralSize < name_len + extra_len + comment_len) refuse("a central directory entry runs past the directory" + at());
    ZipEntry e;
    e.name.assign(reinterpret_cast<const char*>(h + kCentralSize), name_len);
    const std::string entry = "entry '" + e.name + "'";
    if (u16(h + 8) & 1) refuse(entry + " is encrypted");
    e.method = u16(h + 10);
    if (e.method != 0 && e.method != 8) refuse(entry + " uses compression method " + std::to_string(e.method) + " (only stored and deflated are read)");
    e.crc32 = u32(h + 16);
    e.compressed_size = u32(h + 20);
    e.size = u32(h + 24);
    uint64_t local = u32(h + 42);
    // The zip64 extra field holds, in this order, each of the three that is 0xffffffff above.
    const uint8_t* x = h + kCentralSize + name_len;
    for (size_t q = 0; q + 4 <= extra_len;) {
      const size_t len = u16(x + q + 2);
      if (q + 4 + len > extra_len) refuse(entry + ": an extra field runs past its entry");
      if (u16(x + q) == kZip64ExtraId) {
        size_t r = q + 4;
        const auto next = [&](uint64_t& field) {
          if (field != 0xffffffffu) return;
          if (r + 8 > q + 4 + len) refuse(entry + ": its zip64 extra field is too short");
          field = u64(x + r);
          r += 8;
        };
        next(e.size);
        next(e.compressed_size);
        next(local);
      }
      q += 4 + len;
    }
    p += kCentralSize + name_len + extra_len + comment_len;

    // The local header, whose own name and extra lengths place the data (that is how miniz reads it).
    const std::vector<uint8_t> lh = bytes(local, kLocalSize, ("the local header of " + entry).c_str());
    if (u32(lh.data()) != kLocalHeader) refuse("the local header of " + entry + " is missing (offset " + std::to_string(local) + ")");
    e.data_offset = local + kLocalSize + u16(&lh[26]) + u16(&lh[28]);
    if (e.data_offset > cd_offset || e.compressed_size > cd_offset - e.data_offset) {
      refuse(entry + ": its data (" + std::to_string(e.compressed_size) + " bytes at offset " + std::to_string(e.data_offset) +
             ") runs into the central directory or past the file");
    }
    if (e.method == 0 && e.size != e.compressed_size) {
      refuse(entry + " is stored but claims " + std::to_string(e.size) + " bytes from " + std::to_string(e.compressed_size));
    }
    if (e.method == 8 && e.size > e.compressed_size * kMaxDeflateRatio + 64) {
      refuse(entry + " claims " + std::to_string(e.size) + " bytes inflated from " + std::to_string(e.compressed_size) +
             ", more than deflate can expand");
    }
    return e;
  }

  // Reads the entry's data once: its CRC, and for a deflated entry the size
  // it really inflates to, must be what the directory says. (LibTorch's miniz
  // skips CRC checks, so a damaged file would otherwise reach the unpickler
  // and the TorchScript compiler as it is.)
  void check_data(const ZipEntry& e) const {
    const std::string entry = "entry '" + e.name + "'";
    constexpr size_t kChunk = 1 << 20;
    std::vector<uint8_t> chunk(std::min<uint64_t>(kChunk, std::max<uint64_t>(e.compressed_size, 1)));
    std::vector<uint8_t> out(e.method == 8 ? kChunk : 0);
    uLong crc = crc32(0L, Z_NULL, 0);
    uint64_t inflated = 0;
    z_stream z{};
    if (e.method == 8 && inflateInit2(&z, -MAX_WBITS) != Z_OK) failure("zlib: cannot start inflating " + entry);
    struct End {
      z_stream* z;
      bool on;
      ~End() { if (on) inflateEnd(z); }
    } end{&z, e.method == 8};
    bool stream_end = false;
    for (uint64_t done = 0; done < e.compressed_size;) {
      const size_t n = size_t(std::min<uint64_t>(chunk.size(), e.compressed_size - done));
      if (in_.read(e.data_offset + done, chunk.data(), n, entry.c_str()) != n) refuse(entry + ": short read");
      done += n;
      if (e.method == 0) {
        crc = crc32(crc, chunk.data(), uInt(n));
        continue;
      }
      z.next_in = chunk.data();
      z.avail_in = uInt(n);
      // Inflate until this chunk is used up and the output buffer was not
      // filled (a full buffer may leave output pending inside zlib).
      while (!stream_end) {
        z.next_out = out.data();
        z.avail_out = uInt(out.size());
        const int rc = inflate(&z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) refuse(entry + ": damaged deflate data");
        const size_t produced = out.size() - z.avail_out;
        inflated += produced;
        if (inflated > e.size) refuse(entry + " inflates past the " + std::to_string(e.size) + " bytes it claims");
        crc = crc32(crc, out.data(), uInt(produced));
        stream_end = rc == Z_STREAM_END;
        if (rc == Z_BUF_ERROR || (z.avail_in == 0 && z.avail_out != 0)) break;  // needs more input
      }
    }
    if (e.method == 8 && (!stream_end || inflated != e.size)) {
      refuse(entry + " inflates to " + std::to_string(inflated) + " bytes" + (stream_end ? "" : " and ends early") +
             ", it claims " + std::to_string(e.size));
    }
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    // (The fuzz build skips this comparison, as fuzzed projects do with
    // checksums: nearly every mutation would otherwise end here.)
    if (uint32_t(crc) != e.crc32) refuse(entry + ": CRC mismatch (the file is damaged)");
#endif
  }

  const caffe2::serialize::ReadAdapterInterface& in_;
  const uint64_t size_;
  const std::string what_;
};

}  // namespace

std::vector<ZipEntry> check_zip(const caffe2::serialize::ReadAdapterInterface& in, const std::string& what) {
  return Walker(in, what).walk();
}

}  // namespace compress
