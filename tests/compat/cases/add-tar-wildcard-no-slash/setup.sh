mkdir one two
echo content0 > one/foo
echo content1 > two/bar
tar -C one -cf t.tar foo
tar -C two -cf b.tar bar
rm -rf one two
