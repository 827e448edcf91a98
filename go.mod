module github.com/hsmenv/hsmenv

go 1.25
