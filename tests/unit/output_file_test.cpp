// The output file writer's decisions, on files this test owns: any user can run it. The
// attacks by another user, as root, are in tests/integration/privilege_itest.cpp.
#include "ksurf/output_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "error_of.h"

namespace ksurf::test {
namespace {

namespace fs = std::filesystem;

class OutputFile : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/ksurf-output-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string path(const std::string& name) const { return (dir_ / name).string(); }
    static std::string read(const std::string& p) {
        std::ifstream in(p);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
    static void put(const std::string& p, const std::string& text, mode_t mode) {
        std::ofstream(p) << text;
        ASSERT_EQ(chmod(p.c_str(), mode), 0);
    }
    static mode_t mode_of(const std::string& p) {
        struct stat st {};
        EXPECT_EQ(lstat(p.c_str(), &st), 0);
        return st.st_mode & 07777;
    }

    fs::path dir_;
};

struct stat regular(uid_t uid, nlink_t links) {
    struct stat st {};
    st.st_mode = S_IFREG | 0644;
    st.st_uid = uid;
    st.st_nlink = links;
    return st;
}

TEST(OutputFileDecision, OnlyARegularFileOfTheUserWithOneLinkIsWrittenInPlace) {
    EXPECT_EQ(refuse_existing(regular(1000, 1), 1000, true), std::nullopt);
    EXPECT_EQ(refuse_existing(regular(0, 1), 1000, true), "it exists and belongs to uid 0, not to uid 1000 that ksurf runs for");
    EXPECT_EQ(refuse_existing(regular(1000, 2), 1000, true),
              "it has 2 hard links, and writing it would change the other names too");
    struct stat link = regular(1000, 1);
    link.st_mode = S_IFLNK | 0777;
    EXPECT_EQ(refuse_existing(link, 1000, true), "it is a symbolic link, which ksurf does not follow");
    struct stat fifo = regular(1000, 1);
    fifo.st_mode = S_IFIFO | 0600;
    EXPECT_EQ(refuse_existing(fifo, 1000, false), "it exists and is not a regular file");
}

TEST(OutputFileDecision, ReplacingANameLeavesItsOtherLinksAlone) {
    EXPECT_EQ(refuse_existing(regular(1000, 3), 1000, false), std::nullopt);
    EXPECT_NE(refuse_existing(regular(1001, 1), 1000, false), std::nullopt);
}

TEST_F(OutputFile, NewFileIsMode0600) {
    write_output_file(path("new"), "abc\n");
    EXPECT_EQ(read(path("new")), "abc\n");
    EXPECT_EQ(mode_of(path("new")), 0600u);
}

TEST_F(OutputFile, OwnFileIsTruncatedAndMadePrivate) {
    put(path("old"), "a much longer old text\n", 0644);
    write_output_file(path("old"), "new\n");
    EXPECT_EQ(read(path("old")), "new\n");
    EXPECT_EQ(mode_of(path("old")), 0600u);
}

TEST_F(OutputFile, SymlinkIsNotFollowedNorReplaced) {
    put(path("target"), "keep\n", 0644);
    fs::create_symlink(path("target"), path("link"));
    EXPECT_EQ(error_of([&] { write_output_file(path("link"), "x"); }),
              "cannot write " + path("link") + ": it is a symbolic link, which ksurf does not follow");
    EXPECT_EQ(error_of([&] { replace_output_file(path("link"), "x"); }),
              "cannot write " + path("link") + ": it is a symbolic link, which ksurf does not follow");
    EXPECT_EQ(read(path("target")), "keep\n");
    EXPECT_EQ(mode_of(path("target")), 0644u);
    EXPECT_TRUE(fs::is_symlink(path("link")));
}

TEST_F(OutputFile, DanglingSymlinkCreatesNothing) {
    fs::create_symlink(path("nowhere"), path("link"));
    EXPECT_NE(error_of([&] { write_output_file(path("link"), "x"); }), "(no error)");
    EXPECT_FALSE(fs::exists(path("nowhere")));
}

TEST_F(OutputFile, HardLinkIsNotWrittenThrough) {
    put(path("target"), "keep\n", 0644);
    fs::create_hard_link(path("target"), path("link"));
    EXPECT_EQ(error_of([&] { write_output_file(path("link"), "x"); }),
              "cannot write " + path("link") + ": it has 2 hard links, and writing it would change the other names too");
    EXPECT_EQ(read(path("target")), "keep\n");
    EXPECT_EQ(mode_of(path("target")), 0644u);
}

TEST_F(OutputFile, FifoAndDirectoryAreRefusedWithoutBlocking) {
    ASSERT_EQ(mkfifo(path("fifo").c_str(), 0600), 0);
    EXPECT_EQ(error_of([&] { write_output_file(path("fifo"), "x"); }),
              "cannot write " + path("fifo") + ": it exists and is not a regular file");
    fs::create_directory(path("dir"));
    EXPECT_EQ(error_of([&] { write_output_file(path("dir"), "x"); }),
              "cannot write " + path("dir") + ": it exists and is not a regular file");
    EXPECT_EQ(error_of([&] { write_output_file(path("dir") + "/", "x"); }),
              "cannot write " + path("dir") + "/: not a file name");
    EXPECT_NE(error_of([&] { write_output_file(path("missing/x"), "x"); }), "(no error)");
}

TEST_F(OutputFile, ReplaceSwapsTheWholeFileAndLeavesNoTemporary) {
    put(path("metrics"), "old\n", 0644);
    const auto before = fs::hard_link_count(path("metrics"));
    struct stat old_st {};
    ASSERT_EQ(stat(path("metrics").c_str(), &old_st), 0);
    replace_output_file(path("metrics"), "new\n");
    EXPECT_EQ(read(path("metrics")), "new\n");
    EXPECT_EQ(mode_of(path("metrics")), 0600u);
    struct stat new_st {};
    ASSERT_EQ(stat(path("metrics").c_str(), &new_st), 0);
    EXPECT_NE(new_st.st_ino, old_st.st_ino);  // a new file, not the old one rewritten
    EXPECT_EQ(fs::hard_link_count(path("metrics")), before);
    EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(OutputFile, ReplaceLeavesAHardLinkedOriginalIntact) {
    put(path("target"), "keep\n", 0644);
    fs::create_hard_link(path("target"), path("metrics"));
    replace_output_file(path("metrics"), "new\n");
    EXPECT_EQ(read(path("target")), "keep\n");
    EXPECT_EQ(read(path("metrics")), "new\n");
}

}  // namespace
}  // namespace ksurf::test
