require ["editheader", "index"];
deleteheader :index 1 "x-category";
deleteheader :index 1 :last "X-Category";
deleteheader :index 2 "subject";
